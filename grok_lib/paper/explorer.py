"""The slider explorer: Q(R(theta, tau), Delta) of one stored checkpoint computed at whatever (tau, Delta)
a reader picks, with its distortion against eps, accuracies and every coder's size, {coder}_bytes (Eq. 7, 11-14).

Every computed point is kept (in memory and in the run directory's coarse_grid_epochNNNNNN.csv), so
moving back to a point costs nothing. The figure and the widget show the points asked for since the explorer
was made (a grid's, the sliders'), never the rest of the cache: what a notebook shows depends on what it asks,
not on what an earlier session or another notebook computed.
Figures are drawn on a pyplot-free Agg canvas and shipped to the browser as PNG bytes in an ipywidgets
Image; slider callbacks run on the kernel's main thread (`on_main_thread` says why).
"""

from __future__ import annotations

import functools
import io
import math
import threading

import matplotlib
import numpy as np
import pandas as pd
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..complexity.background import Background
from ..complexity.coders import CODERS

# the coders a slider move runs: the entropy coder (~2.5x the paper's time, benchmarks/RESULTS.md) would
# set the pace of every move, so the sliders show the paper's and the symbols sizes
SLIDER_CODERS = ("paper", "symbols")
from ..complexity.problem import ComplexityProblem
from ..training.data import make_split
from ..errors import require
from ..files import write_text_atomic

GRID_FILE = "coarse_grid_epoch{epoch:06d}.csv"
DISTORTION_FLOOR = 1e-6  # distortions below this are drawn at it, so a log axis can show exact zeros
EPS_RANGE = (1e-2, 10.0)  # nats
DELTA_RANGE = (1e-4, 1.0)
TAU_RANGE = (0.01, 1.0)  # tau in (0, 1]; below sigma_bar_1 every matrix is rank 1 already


@functools.cache
def coder_check() -> str:
    """The sizes SLIDER_CODERS give one fixed small matrix, e.g. "paper:270 symbols:66", stored with every
    cached point: a point cached by coders that gave other sizes (a format changed since: the symbols coder's
    checksum, 4 bytes) is computed again, never shown with its old sizes."""
    import torch

    from ..complexity.coarse import coarse_grain

    grained = coarse_grain({"w": torch.linspace(-1, 1, 48).reshape(6, 8)}, 0.9, 0.05)
    return " ".join(f"{name}:{CODERS[name].encode(grained, None).n_bytes}" for name in SLIDER_CODERS)


def distortion(rows) -> np.ndarray:
    """|L(theta_hat) - L(theta)| on the training set (Eq. 7), floored for a log axis."""
    return np.maximum(np.abs(rows.train_loss - rows.reference_train_loss), DISTORTION_FLOOR)


def smallest_within(points: pd.DataFrame, eps: float, coder: str = "paper") -> pd.Series | None:
    """The smallest computed point meeting Eq. 7, |L(theta_hat) - L(theta)| < eps; None when none does."""
    ok = points[(points.train_loss - points.reference_train_loss).abs() < eps]
    return None if ok.empty else ok.loc[ok[f"{coder}_bytes"].idxmin()]


class CheckpointExplorer:
    """Coarse-grains one checkpoint of a stored run at any (tau, Delta), exactly, and remembers every point."""

    def __init__(self, run, epoch: int | None = None):
        epochs = run.checkpoints()
        require(len(epochs) > 0, "run", f"{run.path} has no checkpoints yet; train it first")
        self.run, self.epoch = run, epochs[-1] if epoch is None else epoch
        require(self.epoch in epochs, "epoch", f"no checkpoint at epoch {self.epoch}; stored: {epochs}")
        c = run.config
        split = make_split(c.op, c.p, c.train_frac, c.seed)
        self.problem = ComplexityProblem(run.load_model(self.epoch), F.cross_entropy, (split.train_x, split.train_y),
                                         (split.test_x, split.test_y), early_exit=False, background=False)
        self.path = run.path / GRID_FILE.format(epoch=self.epoch)
        # every point computed for this checkpoint, here or before, by today's coders (coder_check)
        self.points = pd.read_csv(self.path) if self.path.exists() else pd.DataFrame()
        if len(self.points):
            fresh = self.points.get("coders", pd.Series(index=self.points.index, dtype=object)) == coder_check()
            self.points = self.points[fresh].reset_index(drop=True)
        self._asked: list = []  # labels in self.points of the points asked for since this explorer was made
        self._background = Background(2, True, self.problem.timings)  # the coders beside the loss
        self._lock = threading.Lock()

    def _cached(self, tau: float, delta: float) -> pd.Series | None:
        if self.points.empty:
            return None
        hit = self.points[np.isclose(self.points.tau, tau, rtol=0, atol=1e-12)
                          & np.isclose(self.points.delta, delta, rtol=1e-12, atol=0)]
        return None if hit.empty else hit.iloc[0]

    def _asking(self, row: pd.Series) -> pd.Series:
        if row.name not in self._asked:
            self._asked.append(row.name)
        return row

    @property
    def shown(self) -> pd.DataFrame:
        """The points asked for since this explorer was made (point, ensure), in (tau, Delta) order."""
        if not self._asked:
            return self.points.iloc[:0]
        return self.points.loc[self._asked].sort_values(["tau", "delta"]).reset_index(drop=True)

    def point(self, tau: float, delta: float, save: bool = True) -> pd.Series:
        """The coarse-grained checkpoint at exactly (tau, Delta): losses, accuracies, sizes, ranks."""
        tau, delta = float(tau), float(delta)
        with self._lock:
            cached = self._cached(tau, delta)
            if cached is not None:
                return self._asking(cached)
            problem = self.problem
            with problem.limited_threads():
                cg = problem.grainer(tau, delta)
                # the compressors release the GIL: every coder runs beside the loss
                sizes = {name: self._background.start(CODERS[name].encode, cg, None) for name in SLIDER_CODERS}
                weights = cg.weights()
                train_loss, train_acc, _ = problem.loss_and_accuracy(weights, problem.train)
                test_loss, test_acc, _ = problem.loss_and_accuracy(weights, problem.test)
            kept = [r for r in cg.ranks.values() if r is not None]
            row = dict(epoch=self.epoch, tau=tau, delta=delta, train_loss=train_loss, train_acc=train_acc,
                       test_loss=test_loss, test_acc=test_acc, reference_train_loss=problem.reference_loss,
                       **{f"{name}_bytes": size.result().n_bytes for name, size in sizes.items()}, factorized=len(kept),
                       mean_rank=float(np.mean(kept)) if kept else math.nan, coders=coder_check())
            self.points = pd.concat([self.points, pd.DataFrame([row])], ignore_index=True)
            if save:
                self.save()
            return self._asking(self.points.iloc[-1])

    def save(self) -> None:
        write_text_atomic(self.path, self.points.sort_values(["tau", "delta"]).to_csv(index=False))

    def ensure(self, taus, deltas) -> pd.DataFrame:
        """Every (tau, Delta) of a grid computed (what is cached is reused); the points asked for so far."""
        from tqdm.auto import tqdm

        todo = [(t, d) for t in taus for d in deltas if self._cached(float(t), float(d)) is None]
        for tau, delta in tqdm(todo, desc=f"coarse-graining epoch {self.epoch}", unit="point", disable=not todo):
            self.point(tau, delta, save=False)
        for tau, delta in ((t, d) for t in taus for d in deltas):
            self._asking(self._cached(float(tau), float(delta)))
        self.save()
        return self.shown

    def figure(self, eps: float, tau: float | None = None, delta: float | None = None, title: str = "") -> Figure:
        """Distortion and paper-coder size vs Delta of the points asked for so far (`shown`; colour: tau), the
        eps line, the chosen point circled and the smallest point within eps starred."""
        return draw_points(self.shown, eps, tau, delta, title)


def draw_points(points: pd.DataFrame, eps: float, tau: float | None = None, delta: float | None = None,
                title: str = "") -> Figure:
    """The explorer's figure of `points` (rows of `CheckpointExplorer.point`), on a pyplot-free Figure."""
    fig = Figure(figsize=(10, 3.8))
    FigureCanvasAgg(fig)
    ax_loss, ax_size = fig.subplots(1, 2)
    cmap = matplotlib.colormaps["viridis"]
    for tau_value, rows in points.groupby("tau"):  # a grid's points of one tau: joined by a line
        if len(rows) >= 3:
            rows = rows.sort_values("delta")
            ax_loss.plot(rows.delta, distortion(rows), "-", lw=0.8, color=cmap(tau_value))
            ax_size.plot(rows.delta, rows.paper_bytes / 1e3, "-", lw=0.8, color=cmap(tau_value))
    scatter = dict(c=points.tau, cmap=cmap, vmin=0, vmax=1, s=14)
    ax_loss.scatter(points.delta, distortion(points), **scatter)
    mappable = ax_size.scatter(points.delta, points.paper_bytes / 1e3, **scatter)
    fig.colorbar(mappable, ax=ax_size, label="τ")
    ax_loss.axhline(eps, color="k", ls="--", lw=1, label=f"ε = {eps:g} nats")
    best = smallest_within(points, eps)
    if best is not None:
        ax_size.plot(best.delta, best.paper_bytes / 1e3, "*", color="k", ms=14,
                     label=f"smallest within ε so far: {best.paper_bytes / 1e3:.2f} kB "
                           f"(τ {best.tau:.3g}, Δ {best.delta:.3g})")
    if tau is not None and delta is not None:
        chosen = points[np.isclose(points.tau, tau, atol=1e-12) & np.isclose(points.delta, delta, rtol=1e-12)]
        if len(chosen):
            ax_loss.plot(chosen.delta, distortion(chosen), "o", mfc="none", mec="r", ms=14, mew=2, label="your point")
            ax_size.plot(chosen.delta, chosen.paper_bytes / 1e3, "o", mfc="none", mec="r", ms=14, mew=2)
    ax_loss.set(xscale="log", yscale="log", xlabel="bin size Δ (log scale)",
                ylabel=f"distortion |L(θ̂) − L(θ)| (nats, floor {DISTORTION_FLOOR:g})")
    ax_size.set(xscale="log", xlabel="bin size Δ (log scale)", ylabel="compressed size (kB, paper coder)")
    ax_loss.legend(fontsize=7, loc="lower right")
    ax_size.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure, dpi: int = 90) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def readout(row: pd.Series, eps: float) -> str:
    """One line of HTML: the chosen point's distortion against eps, accuracies and both sizes."""
    gap = abs(row.train_loss - row.reference_train_loss)
    verdict = "meets" if gap < eps else "violates"
    ranks = f"{int(row.factorized)} matrices factorized (mean rank {row.mean_rank:.1f})" if row.factorized else \
        "no matrix factorized"
    return (f"<b>τ = {row.tau:.3g}, Δ = {row.delta:.3g}</b>: distortion {gap:.4g} nats — <b>{verdict}</b> "
            f"ε = {eps:.3g}; train acc {row.train_acc:.3f}, test acc {row.test_acc:.3f}; size "
            f"{row.paper_bytes / 1e3:.2f} kB (paper coder), {row.symbols_bytes / 1e3:.2f} kB (symbols); {ranks}")


def on_main_thread(fn):
    """`fn` wrapped to run on the kernel's main thread, whatever thread calls it.

    JupyterLab 4.6 with ipykernel 7 delivers widget messages on a kernel subshell: an observer's callback
    runs on a subshell thread, concurrently with the main thread (a cell still running, the inline
    backend's figure rendering, a callback that was delivered there). matplotlib is not thread-safe: two
    threads drawing at once corrupt its shared mathtext parser (log-axis tick labels are mathtext) and raise
    "ParseException: exception raised in parse action". The callback is therefore handed to the main
    thread's event loop, which runs it between shell messages, never beside a cell. Call this on the main
    thread (where the widget is built).
    """
    import asyncio

    main = threading.main_thread()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no event loop here (plain Python, a test): call directly
        loop = None

    def call(*args, **kwargs):
        if loop is None or threading.current_thread() is main:
            return fn(*args, **kwargs)
        loop.call_soon_threadsafe(lambda: fn(*args, **kwargs))

    return call


def explorer_widget(explorer: CheckpointExplorer, title: str = "", eps: float = 1.0):
    """Sliders over eps (nats, log), tau (0, 1] and Delta (log): tau and Delta recompute the checkpoint at
    exactly that point; eps redraws the bound and the smallest point within it. Needs ipywidgets."""
    import ipywidgets as widgets

    best = smallest_within(explorer.shown, eps) if len(explorer.shown) else None
    start_tau, start_delta = (float(best.tau), float(best.delta)) if best is not None else (1.0, 0.01)
    layout = widgets.Layout(width="32%")
    style = {"description_width": "initial"}
    eps_slider = widgets.FloatLogSlider(value=eps, base=10, min=math.log10(EPS_RANGE[0]), max=math.log10(EPS_RANGE[1]),
                                        step=0.05, description="ε (nats)", continuous_update=False,
                                        readout_format=".3g",
                                        layout=layout, style=style)
    tau_slider = widgets.FloatSlider(value=start_tau, min=TAU_RANGE[0], max=TAU_RANGE[1], step=0.01, description="τ",
                                     continuous_update=False, readout_format=".2f", layout=layout, style=style)
    delta_slider = widgets.FloatLogSlider(value=start_delta, base=10, min=math.log10(DELTA_RANGE[0]),
                                          max=math.log10(DELTA_RANGE[1]), step=0.05, description="Δ (log)",
                                          continuous_update=False, readout_format=".3g", layout=layout, style=style)
    text = widgets.HTML()
    image = widgets.Image(format="png")

    def redraw(change=None):
        try:
            row = explorer.point(tau_slider.value, delta_slider.value)
            figure = explorer.figure(eps_slider.value, row.tau, row.delta, title)
            text.value = readout(row, eps_slider.value)
            image.value = png_bytes(figure)
        except Exception as error:  # a callback's exception would vanish into the kernel log: show it
            text.value = f"<b>could not redraw:</b> {type(error).__name__}: {error}"
            raise

    handler = on_main_thread(redraw)
    for slider in (eps_slider, tau_slider, delta_slider):
        slider.observe(handler, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([eps_slider, tau_slider, delta_slider]), text, image])
    box.add_class("grok-explorer")
    return box
