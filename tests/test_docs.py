"""The documentation site (mkdocs.yml, docs/): it builds with --strict (a broken link or reference fails), no
page loads anything from the network, and in Chromium, opened from the built files with every request to a
non-file URL blocked, the index and a notebook page render: heading, figures, typeset formulas.

The build goes to a temporary folder. Without the docs packages (pip install -e '.[dev]') the module is skipped;
without Chromium or playwright the browser test is skipped, as in tests/test_browser.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NOTEBOOK = "03_coarse_graining"  # formulas in its first cell; figures once executed
DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter",
                 "jupyter_server_mathjax")


def _missing_docs_package() -> str | None:
    for name in DOCS_PACKAGES:
        try:
            __import__(name)
        except ImportError:
            return name
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = _missing_docs_package()
    if missing:
        pytest.skip(f"the docs packages are not installed ({missing} is missing): pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return out


def notebooks() -> list[str]:
    return sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_site_has_every_page(site):
    for page in ["index", "guide", "fidelity", "results", "performance", "benchmarks", "reliability",
                 "architecture", "notebooks", "api/index", "api/complexity", "api/store", "api/training",
                 "api/profiles"] + [f"notebooks/{name}" for name in notebooks()]:
        assert (site / f"{page}.html").is_file(), page
    api = (site / "api" / "complexity.html").read_text(encoding="utf-8")
    assert "measure_complexity" in api and "generalization_bound" in api
    assert (site / "assets" / "mathjax" / "MathJax.js").is_file()
    results = (site / "results.html").read_text(encoding="utf-8")
    for folder in sorted((REPO / "results").glob("*/PROVENANCE.json")):  # each committed profile, its table
        name = folder.parent.name
        assert f"results/{name}/" in results, name
        section = results.split(f'id="the-{name}-profile"', 1)[1]
        assert "<table>" in section.split('id="the-', 1)[0], f"no numbers table for results/{name}"
    assert "could not be computed" not in results


class _Resources(HTMLParser):
    """What a page makes the browser fetch: script, stylesheet, image, frame and media sources."""

    FETCHED = {"script": "src", "img": "src", "iframe": "src", "source": "src", "video": "src", "audio": "src",
               "embed": "src", "object": "data"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.in_script = tag == "script"
        if tag in self.FETCHED and attrs.get(self.FETCHED[tag]):
            self.urls.append(attrs[self.FETCHED[tag]])
        if tag == "link" and attrs.get("href") and set((attrs.get("rel") or "").split()) & {
                "stylesheet", "preload", "modulepreload", "icon", "manifest", "prefetch"}:
            self.urls.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "script":
            self.in_script = False

    def handle_data(self, data):
        if self.in_script:  # inline code: any absolute URL in it may be fetched (import(), src = ..., fetch)
            self.urls += re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}/[^\s\"'`)]*", data)


REMOTE = re.compile(r"^(https?:)?//", re.I)
# remote code or styles pulled in by CSS or inline code: @import url(https://...), url(//...), import("https://...")
REMOTE_IN_CODE = re.compile(r"""(import\s*\(\s*|\.src\s*=\s*|@import\s+(url\()?|url\()\s*["']?(https?:)?//""", re.I)


def test_no_page_loads_anything_from_the_network(site):
    offending = []
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        parser = _Resources()
        parser.feed(text)
        offending += [f"{page.relative_to(site)}: {url}" for url in parser.urls if REMOTE.match(url)]
        offending += [f"{page.relative_to(site)}: …{m.group(0)}" for m in REMOTE_IN_CODE.finditer(text)]
    for sheet in sorted(site.rglob("*.css")):
        text = sheet.read_text(encoding="utf-8", errors="replace")
        offending += [f"{sheet.relative_to(site)}: …{m.group(0)}" for m in REMOTE_IN_CODE.finditer(text)]
    assert not offending, "\n".join(offending[:20])


def _browser_skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return ("no Chromium: install Debian's with `apt-get install chromium` (never `playwright install`, "
                "which downloads a browser)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[dev]'"
    return None


def _loaded_images(page) -> list[list]:
    return page.evaluate("Array.from(document.querySelectorAll('article img'))"
                         ".map(i => [i.complete && i.naturalWidth > 0, i.getAttribute('src').slice(0, 40)])")


@pytest.mark.browser
def test_the_index_and_a_notebook_render_offline_in_chromium(site):
    reason = _browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    blocked = []

    def only_files(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = chromium.new_page()
            page.route("**/*", only_files)

            page.goto((site / "index.html").as_uri(), wait_until="load")
            assert "grok-complexity" in page.title()
            assert page.locator("article h1").first.inner_text().strip().startswith("grok-complexity")
            assert page.locator("article").get_by_text("Measure your own network").count()

            page.goto((site / "results.html").as_uri(), wait_until="load")
            figures = [ok for ok, src in _loaded_images(page) if src.startswith("figures/")]
            assert figures and all(figures), "the results page's committed figures did not load"

            page.goto((site / "notebooks" / f"{NOTEBOOK}.html").as_uri(), wait_until="load")
            heading = page.locator("article h1").first.inner_text()
            assert heading.startswith("3 ·") and "Coarse-graining" in heading
            article = page.locator("article")
            deadline = time.time() + 30  # MathJax typesets after the load event
            while time.time() < deadline:
                typeset = page.locator("article .MathJax").count()
                if typeset and "$\\epsilon" not in article.inner_text():
                    break
                time.sleep(0.25)
            assert page.evaluate("typeof window.MathJax") == "object", "MathJax did not load"
            assert page.locator("article .MathJax").count() > 0, "no formula was typeset"
            assert "$\\epsilon" not in article.inner_text(), "raw TeX left on the page"
            executed = (REPO / "notebooks" / "executed" / f"{NOTEBOOK}.ipynb").is_file()
            text = " ".join(article.inner_text().split())
            assert ("as make reproduce executed it" in text) == executed, "the page's note says the wrong source"
            if executed:  # its figures are inline images
                images = _loaded_images(page)
                assert images and all(ok for ok, _ in images), f"a figure of the notebook did not load: {images}"
        finally:
            chromium.close()
    assert not blocked, f"the pages asked the network for {blocked}"
