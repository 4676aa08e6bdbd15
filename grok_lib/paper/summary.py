"""The README's "our numbers" table, computed from a profile's stored tables (never typed by hand).

    .venv/bin/python -m grok_lib.paper.summary --profile p113     # markdown, one row per (op, regime)
    .venv/bin/python -m grok_lib.paper.summary --profile p113 --versus-paper   # beside the paper's values

Per (op, regime), over its seeds (mean; the seeds are counted): the first logged epochs with train and
test accuracy >= 0.99 (each seed's, then the median), the peak complexity at eps = 1 and its epoch, the
final complexity (the figures' Algorithm 1 variant; the `symbols` coder in brackets), the paper's
Algorithm 1 and Algorithm 2 on the final checkpoint, the naive bzip2 size and its ratio to the final
complexity, the Eq. 4 bound there, and the R^2 of Fig. 4's fit a ln(eps) + b over the final checkpoint's eps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import pandas as pd

from ..complexity.bounds import fit_rate_distortion
from ..errors import require
from ..files import write_text_atomic
from ..store import REPO_ROOT
from ..training.ops import OPS
from ..training.train import grokking_epochs
from .figures import PAPER_FIG1, variant_column
from .notebook import setup
from .profiles import get_profile, run_store
from .tables import committed_store, has_tables


def _epochs(values) -> str:
    hits = [v for v in values if v is not None]
    if not hits:
        return "never"
    middle = int(statistics.median(hits))
    return f"{middle}" + (f" ({len(hits)}/{len(values)} seeds)" if len(hits) < len(values) else "")


def numbers_table(profile: str) -> pd.DataFrame:
    """One row per (op, regime) of the profile's grid, from its run store or committed tables (refused when
    neither holds the whole grid: this never trains)."""
    P = get_profile(profile)
    store = run_store()
    committed = committed_store(P, store)
    require(all(store.run(c).is_complete for c in P.configs()) or
            (committed is not None and has_tables(committed, P.configs())), "profile",
            f"the run store lacks profile {P.name}'s finished grid and nothing is committed for it; "
            f"`python -m grok_lib compute --profile {P.name}` computes it")
    grid = setup(profile)
    complexity, final = grid.complexity(full=True), grid.rate_distortion()  # each run to its last epoch
    variant = grid.profile.algorithm_1
    rows = []
    for op in [o for o in OPS if o in set(c.op for c in grid.configs)]:
        for regime in grid.profile.regimes:
            runs = [r for r in grid.runs if (r.config.op, r.config.regime) == (op, regime)]
            if not runs:
                continue
            marks = [grokking_epochs(r.metrics()) for r in runs]
            c = complexity[(complexity.op == op) & (complexity.regime == regime) & (complexity.eps == 1.0)]
            curve = c.groupby("epoch")[variant_column(variant)].mean() / 1e3
            last = c[c.epoch == c.epoch.max()]
            f = final[(final.op == op) & (final.regime == regime)]
            fit = f.groupby("eps")[variant_column(variant)].mean() / 1e3
            rows.append({
                "run": f"{OPS[op].symbol} {regime}", "seeds": len(runs), "epochs": int(c.epoch.max()),
                "memorized": _epochs([m["memorized"] for m in marks]),
                "generalized": _epochs([m["generalized"] for m in marks]),
                "final test acc": f"{statistics.mean(float(r.metrics().test_acc.iloc[-1]) for r in runs):.3f}",
                "peak kB (epoch)": f"{curve.max():.1f} ({int(curve.idxmax())})",
                "final kB (symbols)": f"{last[variant_column(variant)].mean() / 1e3:.1f} "
                                      f"({last[variant_column(variant, coder='symbols')].mean() / 1e3:.1f})",
                "final, paper's Alg. 1 kB": f"{last[variant_column('alg1')].mean() / 1e3:.1f}",
                "final Alg. 2 kB": f"{last['alg2_paper_bytes'].mean() / 1e3:.1f}",
                "naive kB": f"{last.naive_bytes.mean() / 1e3:.0f}",
                "naive / final": f"{last.naive_bytes.mean() / last[variant_column(variant)].mean():.0f}x",
                "Eq. 4 bound": f"{last[variant_column(variant, 'bound')].mean():.1f}",
                "Fig. 4 R^2": f"{fit_rate_distortion(fit.index, fit.values).r2:.3f}" if len(fit) >= 2 else "",
            })
    return pd.DataFrame(rows)


# The paper's values, read off its figures (../shared/PROTOCOL.md: "approximate values from the authors'
# plot", regularized runs) and its text: complexity peak and end per op (kB, eps = 1; figures.PAPER_FIG1),
# test accuracy 1 at ~200-400 epochs, compression 30-40x better than naive, every Eq. 4 bound vacuous (> 1);
# Fig. 4's R^2 are in its legend, not in the text.
PAPER_APPROX = PAPER_FIG1


def versus_paper(frame: pd.DataFrame) -> pd.DataFrame:
    """numbers_table's rows beside the paper's values, where the paper gives one."""
    symbol_to_op = {OPS[o].symbol: o for o in OPS}
    rows = []
    for row in frame.to_dict("records"):
        symbol, regime = row["run"].rsplit(" ", 1)
        approx = PAPER_APPROX.get(symbol_to_op.get(symbol)) if regime == "ours" else None

        def paper(i: int, approx=approx) -> str:
            return f" (≈ {approx[i]})" if approx else ""

        rows.append({
            "run": row["run"], "seeds": row["seeds"], "epochs": row["epochs"],
            "memorized": row["memorized"],
            "generalized (paper ≈ 200–400 when regularized)": row["generalized"],
            "peak kB (paper ≈)": row["peak kB (epoch)"].split(" ")[0] + paper(0),
            "final kB (paper ≈)": row["final kB (symbols)"].split(" ")[0] + paper(1),
            "naive / final (paper 30–40×)": row["naive / final"],
            "Eq. 4 bound (paper: all > 1)": row["Eq. 4 bound"],
            "Fig. 4 R²": row["Fig. 4 R^2"],
        })
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


README = REPO_ROOT / "README.md"


def readme_block(profile: str) -> str:
    """The lines between `<!-- summary:PROFILE -->` and `<!-- /summary -->` in the README: the versus-paper
    table of `profile`, generated from its tables (tests/test_readme.py checks the README holds exactly it)."""
    return markdown(versus_paper(numbers_table(profile)))


def rewrite_readme(profile: str, path: Path = README) -> bool:
    """Replace the README's block for `profile` with readme_block(profile); False when it has none."""
    text = path.read_text()
    start, end = f"<!-- summary:{profile} -->\n", "<!-- /summary -->"
    if start not in text:
        return False
    head, rest = text.split(start, 1)
    require(end in rest, "README", f"the block {start.strip()} has no closing {end}")
    write_text_atomic(path, head + start + readme_block(profile) + "\n" + end + rest.split(end, 1)[1])
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grok_lib.paper.summary", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--versus-paper", action="store_true", help="beside the paper's values")
    parser.add_argument("--readme", action="store_true",
                        help="rewrite the README's block for this profile (<!-- summary:PROFILE -->)")
    args = parser.parse_args(argv)
    if args.readme:
        found = rewrite_readme(args.profile)
        require(found, "readme", f"README.md has no <!-- summary:{args.profile} --> block")
        return 0
    frame = numbers_table(args.profile)
    print(markdown(versus_paper(frame) if args.versus_paper else frame))
    return 0


if __name__ == "__main__":
    sys.exit(main())
