"""The distortion side of complexity (Eq. 6-7): a network's mean loss with other weights put in.

`LossMeter` holds a module and its loss function and measures the mean loss (and accuracy, for a
classifier) of any weights on a dataset, in chunks, stopping as soon as the partial sum proves the loss
exceeds a limit (valid because a per-example loss like cross-entropy is >= 0; early_exit=False for a loss
that can be negative). `batched` does the same for several weight sets at once, one vmap'd forward per
chunk over the sets not yet ruled out: what a GPU needs to be busy with the small networks here.
"""

from __future__ import annotations

import math

import torch
from torch.func import functional_call

from ..errors import GrokError, require


def check_data(data, field: str) -> tuple[torch.Tensor, torch.Tensor]:
    require(isinstance(data, (tuple, list)) and len(data) == 2, field, "must be a pair (inputs, targets) of tensors")
    x, y = data
    require(isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor), field, "must be a pair of tensors")
    require(len(x) > 0, field, "is empty; the distortion is measured on the full training set")
    require(len(x) == len(y), field, f"has {len(x)} inputs but {len(y)} targets")
    return x, y


def train_subset(data: tuple, examples: int, seed: int = 0) -> tuple:
    """`examples` of the (inputs, targets) pair drawn without replacement by a seeded generator (all of
    them when there are no more): a training set sorted by class still gives every class its share."""
    n = len(data[0])
    if examples >= n:
        return data
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:examples].to(data[0].device)
    return tuple(t[chosen] for t in data)


def within_bound(loss: float, reference: float, eps: float, one_sided: bool) -> bool:
    """Eq. 7: |L(theta_hat) - L(theta)| < eps; the code's one-sided variant: L(theta_hat) <= L(theta) + eps."""
    if not math.isfinite(loss):
        return False
    return loss <= reference + eps if one_sided else abs(loss - reference) < eps


def _scalar_loss(loss) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise GrokError("loss_fn", "must return a scalar mean loss (like F.cross_entropy)")
    return loss.reshape(())


def _is_classifier(outputs: torch.Tensor, targets: torch.Tensor) -> bool:
    """(N, C) outputs and integer targets: accuracy is the share of argmax hits."""
    return outputs.ndim == 2 and targets.ndim == 1 and not targets.is_floating_point()


class LossMeter:
    """Mean loss and accuracy of a module under given weights, chunked, with early exit."""

    def __init__(self, module: torch.nn.Module, loss_fn, chunk_size: int = 8192, early_exit: bool = True):
        require(isinstance(chunk_size, int) and chunk_size >= 1, "chunk_size",
                f"must be a positive integer, got {chunk_size!r}")
        self.module, self.loss_fn, self.chunk_size, self.early_exit = module, loss_fn, chunk_size, early_exit

    def chunks(self, n: int, limit: float) -> list[tuple[int, int]]:
        """(start, stop) of the loss's chunks: chunk_size examples each, except that a bounded evaluation
        with early exit starts with a quarter of the set. A coarse-graining that breaks the network has a
        loss near log(vocab), far above L(theta) + eps, so a quarter usually proves it infeasible for a
        quarter of a forward; a feasible point pays one extra, smaller forward.
        """
        first = min(self.chunk_size, -(-n // 4)) if self.early_exit and math.isfinite(limit) else self.chunk_size
        bounds = [0] + list(range(first, n, self.chunk_size)) + [n]
        return list(zip(bounds[:-1], bounds[1:]))

    def _checked(self, loss: float) -> float:
        """A chunk's mean loss; a negative one is refused when the early exit relies on losses >= 0."""
        if loss < 0 and self.early_exit:
            raise GrokError("loss_fn", f"returned a negative mean loss ({loss:.3g}); the early exit assumes a "
                            "loss >= 0 per example (like cross-entropy): give such a loss, or early_exit=False")
        return loss

    @torch.no_grad()
    def loss_and_accuracy(self, weights: dict[str, torch.Tensor], data, limit: float = math.inf,
                          on_continue=None) -> tuple[float, float, bool]:
        """(mean loss, accuracy, exact) of `weights` on `data`, stopping once the loss provably exceeds `limit`
        (then the loss is a lower bound and exact is False; accuracy is NaN then and for non-classifiers).

        on_continue: called once, before the second chunk, when the first has not ruled the point out.
        """
        x, y = data
        n = len(x)
        was_training = self.module.training
        self.module.eval()
        total, correct = 0.0, 0
        try:
            for index, (start, stop) in enumerate(self.chunks(n, limit)):
                if index == 1 and on_continue is not None:
                    on_continue()
                xb, yb = x[start:stop], y[start:stop]
                outputs = functional_call(self.module, weights, (xb,))
                chunk = self._checked(float(_scalar_loss(self.loss_fn(outputs, yb))))
                total += chunk * len(yb)
                hits = int((outputs.argmax(-1) == yb).sum()) if _is_classifier(outputs, yb) else None
                correct = None if hits is None or correct is None else correct + hits
                if not math.isfinite(total):
                    return math.inf, math.nan, True  # a NaN/inf loss violates every bound
                if self.early_exit and total / n > limit:
                    return total / n, math.nan, False
        finally:
            self.module.train(was_training)
        return total / n, math.nan if correct is None else correct / n, True

    @torch.no_grad()
    def batched(self, weight_sets: list[dict[str, torch.Tensor]], data, limit: float = math.inf,
                on_continue=None) -> list[tuple[float, float, bool]]:
        """loss_and_accuracy of each weight set, in one vmap'd forward per chunk over the sets not yet
        ruled out; on_continue(indices) is called before the second chunk with the sets still in."""
        x, y = data
        n = len(x)
        stacked = {name: torch.stack([w[name] for w in weight_sets]) for name in weight_sets[0]}

        def one(weights, xb, yb):
            outputs = functional_call(self.module, weights, (xb,))
            loss = _scalar_loss(self.loss_fn(outputs, yb))
            classifier = _is_classifier(outputs, yb)
            hits = (outputs.argmax(-1) == yb).sum() if classifier else torch.zeros((), dtype=torch.long)
            return loss, hits, torch.tensor(classifier)

        batched = torch.func.vmap(one, in_dims=(0, None, None))
        totals, correct = [0.0] * len(weight_sets), [0] * len(weight_sets)
        out: list[tuple | None] = [None] * len(weight_sets)
        active, classifier = list(range(len(weight_sets))), True
        was_training = self.module.training
        self.module.eval()
        try:
            for index, (start, stop) in enumerate(self.chunks(n, limit)):
                if index == 1 and on_continue is not None:
                    on_continue(active)
                rows = torch.tensor(active, device=x.device)
                losses, hits, is_classifier = batched({k: v.index_select(0, rows) for k, v in stacked.items()},
                                                      x[start:stop], y[start:stop])
                classifier = bool(is_classifier.all())
                for i, loss, hit in zip(active, losses.tolist(), hits.tolist()):
                    totals[i] += self._checked(loss) * (stop - start)
                    correct[i] += hit
                    if not math.isfinite(totals[i]):
                        out[i] = (math.inf, math.nan, True)
                    elif self.early_exit and totals[i] / n > limit:
                        out[i] = (totals[i] / n, math.nan, False)
                active = [i for i in active if out[i] is None]
                if not active:
                    break
        finally:
            self.module.train(was_training)
        for i in active:
            out[i] = (totals[i] / n, correct[i] / n if classifier else math.nan, True)
        return out


def check_eps(eps: float) -> None:
    require(isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and eps > 0, "eps",
            f"distortion bound must be a finite number > 0, got {eps!r}")
