"""The slider explorer computes the checkpoint at exactly the chosen point, remembers it, and redraws safely."""

import asyncio
import threading

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from grok_lib.complexity.coarse import coarse_grain
from grok_lib.complexity.coders import paper_size
from grok_lib.training.data import make_split
from grok_lib.errors import GrokError
from grok_lib.paper.explorer import CheckpointExplorer, explorer_widget, on_main_thread, smallest_within
from grok_lib.store import RunStore
from grok_lib.training.train import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from grok_lib.training.config import RunConfig

    config = RunConfig(op="add", regime="ours", p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=12)
    return train(config, RunStore(tmp_path_factory.mktemp("runs")), progress=False)


def test_a_point_is_the_checkpoint_coarse_grained_at_exactly_that_tau_and_delta(run):
    explorer = CheckpointExplorer(run)
    row = explorer.point(0.83, 0.0123)
    model = run.load_model()
    cg = coarse_grain(dict(model.named_parameters()), 0.83, 0.0123)
    c = run.config
    split = make_split(c.op, c.p, c.train_frac, c.seed)
    with torch.no_grad():
        loss = float(F.cross_entropy(functional_call(model, cg.weights(), (split.train_x,)), split.train_y))
    assert (row.tau, row.delta) == (0.83, 0.0123)
    assert row.train_loss == pytest.approx(loss, rel=1e-6)
    assert row.paper_bytes == paper_size(cg.stored_arrays()) and 0 < row.symbols_bytes <= row.paper_bytes
    assert 0.0 <= row.test_acc <= 1.0


def test_computed_points_are_cached_in_memory_and_in_the_run_directory(run, monkeypatch):
    explorer = CheckpointExplorer(run)
    first = explorer.point(0.9, 0.05)
    monkeypatch.setattr(explorer.problem, "grainer", None)  # any recomputation would now fail
    assert explorer.point(0.9, 0.05).equals(first)
    again = CheckpointExplorer(run)
    assert again._cached(0.9, 0.05) is not None and len(again.points) >= 1


def test_the_star_is_the_smallest_point_within_eps(run):
    explorer = CheckpointExplorer(run)
    points = explorer.ensure([0.5, 1.0], [1e-3, 0.03, 0.3])
    for eps in (1e-3, 0.1, 10.0):
        best = smallest_within(points, eps)
        ok = points[(points.train_loss - points.reference_train_loss).abs() < eps]
        assert (best is None) == ok.empty
        if best is not None:
            assert best.paper_bytes == ok.paper_bytes.min()


def test_the_figure_does_not_touch_pyplot(run):
    explorer = CheckpointExplorer(run)
    explorer.ensure([1.0], [1e-2, 0.1])
    before = plt.get_fignums()
    fig = explorer.figure(eps=1.0, tau=1.0, delta=0.1, title="t")
    assert plt.get_fignums() == before and len(fig.axes) == 3  # two panels and the tau colour bar


def test_a_callback_from_another_thread_runs_on_the_main_thread():
    seen = []

    async def scenario():
        handler = on_main_thread(lambda: seen.append(threading.current_thread()))
        worker = threading.Thread(target=handler)  # as a kernel subshell delivers a widget message
        worker.start()
        worker.join()
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert seen == [threading.main_thread()]


def test_moving_a_slider_recomputes_and_redraws(run):
    pytest.importorskip("ipywidgets")
    box = explorer_widget(CheckpointExplorer(run), "t")
    (eps, tau, delta), text, image = box.children[0].children, box.children[1], box.children[2]
    first = image.value
    tau.value = 0.37
    assert image.value != first and "τ = 0.37" in text.value
    eps.value = 5.0
    assert "ε = 5" in text.value


def test_an_unknown_epoch_is_refused(run):
    with pytest.raises(GrokError, match="^epoch:"):
        CheckpointExplorer(run, epoch=999)


def test_a_notebook_shows_the_points_it_asks_for_not_the_rest_of_the_cache(run):
    """What a figure or table shows depends on the grid asked for, not on what another notebook (or an earlier
    session's sliders) left in the run's cache: a cold and a warm reproduction show the same."""
    CheckpointExplorer(run).ensure([0.6], [0.05, 0.2])  # another notebook's grid, cached in the run
    explorer = CheckpointExplorer(run)
    shown = explorer.ensure([1.0], [0.1, 1e-2])
    assert list(zip(shown.tau, shown.delta)) == [(1.0, 0.01), (1.0, 0.1)] and list(shown.index) == [0, 1]
    assert len(explorer.points) >= 4 and explorer.shown.equals(shown)
    explorer.point(0.6, 0.05)  # a slider move to a cached point: shown from now on
    assert (0.6, 0.05) in set(zip(explorer.shown.tau, explorer.shown.delta))


def test_points_cached_by_coders_that_gave_other_sizes_are_computed_again(run):
    import pandas as pd

    from grok_lib.paper.explorer import coder_check

    first = CheckpointExplorer(run).point(0.7, 0.02)
    assert first.coders == coder_check()
    frame = pd.read_csv(CheckpointExplorer(run).path)
    frame["coders"], frame["symbols_bytes"] = "paper:270 symbols:62", frame.symbols_bytes - 4  # before a format change
    frame.to_csv(CheckpointExplorer(run).path, index=False)
    again = CheckpointExplorer(run)
    assert again._cached(0.7, 0.02) is None
    assert again.point(0.7, 0.02).symbols_bytes == first.symbols_bytes
