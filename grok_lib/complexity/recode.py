"""A stored table's coder sizes computed again from its checkpoints, without searching again.

Every answer row of complexity.csv, rate_distortion.csv, tighter.csv and an LMN run's complexity.csv
(`tracking.answer_columns`) keeps what it accepted: Delta, tau, the ranks and the per-parameter scales. That
is enough to rebuild the coarse-grained network exactly (`CoarseGrainer.with_ranks`) and to encode it again
when a coder changes its format (the checksum that now ends every symbols and entropy description, for
one), while the search -- which minimized the paper's size, not these -- stays as it was. The paper's
size is computed again too and must equal the stored one: the proof that the rebuilt network is the
measured one. A table is rewritten atomically, only if a value changed.

A store's runs: `python -m grok_lib.paper.recode_runs RUN_DIR [RUN_DIR ...]` (grok_lib.paper.recode_runs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from .bounds import generalization_bound, total_description_length
from .coarse import CoarseGrainer
from .coders import coded_sizes
from .results import bound_column, length_column, point_key, size_column
from ..errors import GrokError
from ..files import write_text_atomic

RECODED = ("symbols", "entropy")  # the coders whose sizes a format change moves; "paper" is the check


def answer_prefixes(frame: pd.DataFrame) -> list[str]:
    """The answers a table holds: every prefix with both a {prefix}delta and a {prefix}ranks column."""
    return [c[:-len("delta")] for c in frame.columns if c.endswith("delta") and c[:-len("delta")] + "ranks" in frame]


def _coarse(grainer: CoarseGrainer, row: pd.Series, prefix: str):
    ranks = json.loads(row[prefix + "ranks"])
    if sorted(ranks) != sorted(grainer.names):
        raise GrokError("table", f"the {prefix}ranks name {sorted(ranks)}, the checkpoint {sorted(grainer.names)}")
    scales = json.loads(row[prefix + "scales"]) if isinstance(row.get(prefix + "scales"), str) else {}
    tau = row[prefix + "tau"]
    return grainer.with_ranks(tuple(ranks[n] for n in grainer.names), float(row[prefix + "delta"]),
                              None if pd.isna(tau) else float(tau),
                              tuple(float(scales[n]) for n in grainer.names) if scales else None)


def recode_frame(frame: pd.DataFrame, weights_at: Callable[[int], dict[str, torch.Tensor]], *, at: str = "epoch",
                 factor_split: str = "left", bound_delta: float = 0.05, n_train: int | None = None,
                 coders: tuple[str, ...] = RECODED, progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """`frame` with every answer's `coders` sizes (bytes, bits, codec) and the Eq. 4 bound and description
    length built on them computed again; weights_at(value of column `at`) -> that checkpoint's tensors.

    n_train: the training set's size where the table has no n_train column (an LMN run's table).
    Raises GrokError("table", ...) where the rebuilt network's paper size is not the stored one.
    """
    out = frame.copy()
    prefixes = answer_prefixes(frame)
    for value, rows in frame.groupby(at, sort=True):
        grainer = CoarseGrainer(weights_at(int(value)), factor_split)
        cache: dict = {}
        for index, row in rows.iterrows():
            for prefix in prefixes:
                if pd.isna(row[prefix + "delta"]):
                    continue
                cg = _coarse(grainer, row, prefix)
                key = (cg.tau, point_key(tuple(cg.ranks.values()), cg.delta, tuple(p.delta for p in cg.params)))
                if key not in cache:  # answers often coincide (pooled is Algorithm 1's or 2's): encode once
                    cache[key] = coded_sizes(cg)
                sizes = cache[key]
                stored = row[size_column(prefix, "paper")]
                if sizes["paper"].n_bytes != stored:
                    raise GrokError("table", f"{at} {value}, {prefix}: the rebuilt network's paper size "
                                    f"{sizes['paper'].n_bytes} is not the stored {stored}; not recoded")
                count = row["n_train"] if "n_train" in row else n_train
                error = 1.0 - row[prefix + "train_acc"]
                for coder in coders:
                    size = sizes[coder]
                    out.at[index, size_column(prefix, coder)] = size.n_bytes
                    out.at[index, size_column(prefix, coder, "bits")] = size.n_bits
                    out.at[index, size_column(prefix, coder, "codec")] = size.codec
                    out.at[index, bound_column(prefix, coder)] = generalization_bound(
                        error, size.n_bits, int(count), bound_delta) if math.isfinite(error) else math.nan
                    out.at[index, length_column(prefix, coder)] = total_description_length(
                        size.n_bits, row[prefix + "train_loss"], int(count))
        if progress is not None:
            progress(len(rows))
    return out


def recode_table(path: Path, weights_at, **options) -> bool:
    """Recode the table at `path` in place (atomically); whether anything changed."""
    frame = pd.read_csv(path)  # round-trip precision: unchanged values are written back unchanged
    new = recode_frame(frame, weights_at, **options)
    if new.equals(frame):
        return False
    write_text_atomic(path, new.to_csv(index=False))
    return True
