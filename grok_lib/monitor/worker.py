"""What runs in a ComplexityMonitor's worker process: the model, loss and data arrive once (`init_worker`),
then every snapshot's weights are measured (`measure_snapshot`) into one row of plain numbers.

A row's columns (all floats but `step`; `tag` in grok_lib.monitor.sinks names their TensorBoard tags):
    step, eps, tau (NaN: no low-rank step), delta                  the accepted coarse-graining
    {coder}_bytes for every coder (paper, symbols, entropy)     its description length (complexity)
    bound_{coder}                                                Eq. 4 with K from that coder (bits)
    coarse_train_loss, coarse_train_acc, coarse_test_loss, coarse_test_acc   of the coarse-grained network
    train_loss, train_acc, test_loss, test_acc                  of the network itself (model_stats)
    l2_norm, spectral_entropy, effective_rank, effective_rank_mean   of its weights (model_stats)
    lmn                                                          LMN, for an MLP of nn.Linear layers
    measure_s                                                    seconds this measurement took
Accuracies are NaN unless the outputs are (N, classes) logits and the targets integer labels.
"""

from __future__ import annotations

import io
import math
import signal
import time

import torch

from ..complexity.bounds import generalization_bound
from ..complexity.search import measure_complexity
from ..training.model import MLP
from ..training.regularizers import spectral_summary, weight_matrices
from ..training.train import l2_norm
from ..errors import GrokError
from ..lmn.measure import LMNConfig, lmn_samples, mlp_lmn, network_split

_WORKER: dict = {}  # this process's model, loss, data and options, set once by init_worker


def serialize(state: dict[str, torch.Tensor]) -> bytes:
    """A state dict as bytes (torch.save of its CPU tensors): the snapshot sent to a worker."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def init_worker(setup: dict, threads: int) -> None:
    """The worker's set-up: `threads` torch threads, Ctrl-C left to the training process (which then decides
    what to wait for), and the model, loss and data kept for every call. (Its lower priority is set by the
    training process as soon as it is started: ComplexityMonitor._lower_priority.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _WORKER.clear()
    _WORKER.update(setup)
    config = lmn_config(setup["model"], setup["train"][0]) if setup["lmn_samples"] else None
    if config is not None:
        _WORKER["lmn_inputs"] = lmn_samples(setup["train"][0], setup["lmn_samples"])
        _WORKER["lmn_config"] = config


def measure_snapshot(step: int, payload: bytes) -> dict:
    """One snapshot's row (see the module docstring), measured with the options given at set-up."""
    start = time.perf_counter()
    model = _WORKER["model"]
    model.load_state_dict(torch.load(io.BytesIO(payload), weights_only=True))
    train, test = _WORKER["train"], _WORKER["test"]
    result = measure_complexity(model, _WORKER["loss_fn"], train, _WORKER["eps"], test_data=test,
                                **_WORKER["options"])
    row: dict = dict(step=step, eps=result.eps, tau=math.nan if result.tau is None else float(result.tau),
                     delta=float(result.delta))
    row.update({f"{coder}_bytes": float(size.n_bytes) for coder, size in result.sizes.items()})
    error = 1.0 - result.train_acc
    for coder, size in result.sizes.items():
        row[f"bound_{coder}"] = generalization_bound(error, size.n_bits, result.n_train, _WORKER["bound_delta"]) \
            if math.isfinite(error) else math.nan
    row.update(coarse_train_loss=result.train_loss, coarse_train_acc=result.train_acc,
               coarse_test_loss=result.test_loss, coarse_test_acc=result.test_acc)
    if _WORKER["model_stats"]:
        row.update(model_stats(model, _WORKER["loss_fn"], train, test))
    if "lmn_inputs" in _WORKER:
        row["lmn"] = mlp_lmn(model, _WORKER["lmn_inputs"], _WORKER["lmn_config"]).lmn
    row["measure_s"] = time.perf_counter() - start
    return row


@torch.no_grad()
def loss_and_accuracy(model, loss_fn, data, chunk: int = 8192) -> tuple[float, float]:
    """Mean loss_fn over (x, y) (chunks weighted by size) and the accuracy of argmax (NaN unless classifying)."""
    x, y = data
    total, correct, classifying = 0.0, 0, not (y.is_floating_point() or y.is_complex())
    for begin in range(0, len(x), chunk):
        out = model(x[begin:begin + chunk])
        total += float(loss_fn(out, y[begin:begin + chunk])) * len(out)
        classifying = classifying and out.ndim == 2 and y.ndim == 1
        if classifying:
            correct += int((out.argmax(-1) == y[begin:begin + chunk]).sum())
    return total / len(x), correct / len(x) if classifying else math.nan


def model_stats(model, loss_fn, train, test) -> dict[str, float]:
    """The network's own losses and accuracies, its L2 norm, and spectral entropy / effective rank (Fig. 8)."""
    was_training = model.training
    model.eval()
    try:
        row = dict(zip(("train_loss", "train_acc"), loss_and_accuracy(model, loss_fn, train)))
        if test is not None:
            row.update(zip(("test_loss", "test_acc"), loss_and_accuracy(model, loss_fn, test)))
    finally:
        model.train(was_training)
    params = {name: p.detach() for name, p in model.named_parameters()}
    row["l2_norm"] = l2_norm(params)
    if weight_matrices(params):
        summary = spectral_summary(params)
        row.update({k: summary[k] for k in ("spectral_entropy", "effective_rank", "effective_rank_mean")})
    return row


def lmn_config(model: torch.nn.Module, inputs: torch.Tensor) -> LMNConfig | None:
    """Where the monitor cuts a network for LMN (grok_lib.lmn.measure.network_split, the paper's other
    settings): a grok_lib MLP after its first hidden layer (the paper's cut, layer 1); an nn.Sequential of
    nn.Linear layers and parameter-free modules at its inputs (layer 0: the first Linear's outputs), which
    for one hidden layer, the common case, is the only cut whose head is not affine (LMN = 1). None for
    any other network, an MLP of one layer, a Sequential of fewer than two Linear layers, or one input."""
    layer = 1 if isinstance(model, MLP) else 0
    if len(inputs) < 2 or layer == 0 and sum(isinstance(m, torch.nn.Linear) for m in model.modules()) < 2:
        return None
    try:
        network_split(model, inputs[:2], layer)
    except GrokError:
        return None
    return LMNConfig(layer=layer)
