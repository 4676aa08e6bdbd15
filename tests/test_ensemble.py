import pandas as pd
import pytest
import torch

from conftest import cuda
from grok_lib.training.config import RunConfig
from grok_lib.training.ensemble import StackedAdamW, train_ensemble
from grok_lib.errors import GrokError
from grok_lib.store import RunStore
from grok_lib.training.train import ADAM_EPS, BETAS, log_schedule, train

DETERMINISTIC = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "l2_norm", "spectral_entropy",
                 "effective_rank"]
TINY = dict(op="add", p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=20)
# one regularized and one unregularized run, different seeds: every per-run quantity differs
CONFIGS = [RunConfig(regime="ours", seed=0, **TINY), RunConfig(regime="none", seed=3, **TINY)]
# The attention key bias adds q.b_k to every score of a query, which softmax ignores: its exact gradient
# is zero, the computed one is rounding noise, and Adam scales that noise to steps of size ~lr. It
# random-walks in any implementation, so only bitwise-identical arithmetic reproduces it.
NOISE_DRIVEN = {"blocks.0.attn.key.bias"}


@pytest.fixture(scope="module")
def solo_runs(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("solo"))
    return [train(c, store, progress=False) for c in CONFIGS]


@pytest.fixture(scope="module")
def ensemble_runs(tmp_path_factory):
    return train_ensemble(CONFIGS, RunStore(tmp_path_factory.mktemp("ensemble")), progress=False)


def assert_same_training(a, b, rtol, atol):
    """Same metrics columns and rows, same checkpoint epochs, weights within tolerance (all weights
    when the tolerance is zero, else all but the noise-driven key bias)."""
    assert list(a.metrics().columns) == list(b.metrics().columns)
    pd.testing.assert_frame_equal(a.metrics()[DETERMINISTIC], b.metrics()[DETERMINISTIC], rtol=rtol, atol=atol)
    assert a.checkpoints() == b.checkpoints()
    for epoch in a.checkpoints():
        wa, wb = a.load_weights(epoch), b.load_weights(epoch)
        assert wa.keys() == wb.keys()
        for name in wa.keys() - (NOISE_DRIVEN if rtol or atol else set()):
            torch.testing.assert_close(wa[name], wb[name], rtol=rtol, atol=atol)


def test_ensemble_runs_match_the_same_runs_trained_alone(solo_runs, ensemble_runs):
    for solo, member in zip(solo_runs, ensemble_runs):
        assert member.config == solo.config and member.is_complete
        assert list(member.metrics().epoch) == log_schedule(20) + [20]
        assert_same_training(member, solo, rtol=1e-4, atol=1e-6)
    assert solo_runs[0].metrics().train_loss.iloc[-1] != solo_runs[1].metrics().train_loss.iloc[-1]


@cuda
def test_on_cuda_ensemble_runs_match_the_same_runs_trained_alone(tmp_path):
    solo = [train(c, RunStore(tmp_path / "solo"), device="cuda", progress=False) for c in CONFIGS]
    members = train_ensemble(CONFIGS, RunStore(tmp_path / "ensemble"), device="cuda", progress=False)
    for run, member in zip(solo, members):
        assert_same_training(member, run, rtol=1e-3, atol=1e-5)


def test_interrupted_ensemble_resumes_to_identical_metrics(tmp_path, ensemble_runs):
    store = RunStore(tmp_path)
    partial = train_ensemble(CONFIGS, store, progress=False, stop_after=9)  # stops after logging epoch 8
    assert [r.resume_epoch() for r in partial] == [8, 8]
    resumed = train_ensemble(CONFIGS, store, progress=False)
    for whole, run in zip(ensemble_runs, resumed):
        assert_same_training(run, whole, rtol=0, atol=0)


def test_run_started_in_an_ensemble_is_finished_alone_by_train(tmp_path, solo_runs):
    """The resume state has train()'s format: weights, AdamW moments and step, RNG states."""
    store = RunStore(tmp_path)
    train_ensemble(CONFIGS, store, progress=False, stop_after=9)
    finished = train(CONFIGS[0], store, progress=False)
    assert_same_training(finished, solo_runs[0], rtol=1e-4, atol=1e-6)


def test_finished_runs_are_skipped_and_runs_at_other_epochs_resume_separately(tmp_path, solo_runs):
    store = RunStore(tmp_path)
    done = train(CONFIGS[0], store, progress=False)
    stamp = done.metrics_path.stat().st_mtime_ns
    train(CONFIGS[1], store, progress=False, stop_after=5)  # logged epoch 4
    runs = train_ensemble(CONFIGS, store, progress=False)
    assert done.metrics_path.stat().st_mtime_ns == stamp
    assert_same_training(runs[1], solo_runs[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("changes, field", [
    (dict(op="mul"), "op"), (dict(d_model=32), "d_model"), (dict(n_layers=2), "n_layers"),
    (dict(d_mlp=64), "d_mlp"), (dict(p=13), "p"), (dict(epochs=30), "epochs"), (dict(batch_size=4), "batch_size"),
])
def test_ensemble_of_different_ops_or_architectures_is_refused_naming_the_field(tmp_path, changes, field):
    with pytest.raises(GrokError) as err:
        train_ensemble([CONFIGS[0], CONFIGS[1].with_(**changes)], RunStore(tmp_path), progress=False)
    assert err.value.field == field
    assert not any(tmp_path.iterdir()), "nothing is written before the check"


def test_duplicate_run_in_ensemble_is_refused(tmp_path):
    with pytest.raises(GrokError) as err:
        train_ensemble([CONFIGS[0], CONFIGS[0]], RunStore(tmp_path), progress=False)
    assert err.value.field == "configs"


def test_stacked_adamw_with_per_run_decay_matches_torch_adamw():
    g = torch.Generator().manual_seed(0)
    lrs, decays = [1e-3, 3e-3], [1.0, 0.0]
    start = torch.randn(2, 50, generator=g)
    grads = torch.randn(6, 2, 50, generator=g)
    stacked = start.clone()
    optimizer = StackedAdamW(lrs, decays, torch.zeros_like(start), torch.zeros_like(start), steps=0)
    for grad in grads:
        optimizer.step(stacked, grad)
    for e in range(2):
        param = torch.nn.Parameter(start[e].clone())
        reference = torch.optim.AdamW([param], lr=lrs[e], betas=BETAS, eps=ADAM_EPS, weight_decay=decays[e])
        for grad in grads:
            param.grad = grad[e].clone()
            reference.step()
        torch.testing.assert_close(stacked[e], param.detach(), rtol=1e-6, atol=1e-7)


def test_a_penalty_added_to_the_table_is_paid_by_solo_and_ensemble_training_alike(monkeypatch):
    """Both training paths read regularizers.PENALTIES: a new term changes both losses by the same amount."""
    from torch.func import functional_call

    import grok_lib.training.regularizers as regularizers
    from grok_lib.training.data import make_split
    from grok_lib.training.ensemble import ParamLayout, Regularization, ensemble_loss
    from grok_lib.training.model import Transformer
    from grok_lib.training.train import training_loss

    def squares(params):
        return sum(v.square().sum() for v in params.values())

    def stacked_squares(params):
        return sum(v.square().flatten(1).sum(1) for v in params.values())

    config = RunConfig(regime="wd", seed=0, beta=0.5, **TINY)  # no noise: both losses are deterministic
    model = Transformer(config.model_config())
    params = dict(model.named_parameters())
    split = make_split(config.op, config.p, config.train_frac, config.seed)
    xb, yb = split.train_x[:8], split.train_y[:8]
    cross_entropy = torch.nn.functional.cross_entropy(functional_call(model, params, (xb,)), yb)
    spectral = regularizers.spectral_entropy_penalty(params)
    monkeypatch.setitem(regularizers.PENALTIES, "squares", regularizers.Penalty("beta", squares, stacked_squares, ""))
    solo = training_loss(model, params, xb, yb, config, None)
    torch.testing.assert_close(solo, cross_entropy + 0.5 * spectral + 0.5 * squares(params))
    layout = ParamLayout.of(model)
    flat = layout.flatten(params.values())[None]
    batched = ensemble_loss(model, layout, flat, xb[None], yb[None], Regularization.of([config], "cpu"), None)
    torch.testing.assert_close(batched, solo, rtol=1e-5, atol=1e-5)
