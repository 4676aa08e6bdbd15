"""Complexity of every stored checkpoint of a run, for a list of eps, kept in the run directory.

Files written next to metrics.csv::

    complexity.json   the TrackingSettings used: eps, the Measurement, edge (other settings are refused)
    complexity.csv    one row per (epoch, eps), columns:
        epoch, eps
        three answers, each under its prefix, with the same columns (`answer_columns`):
          alg1_    Algorithm 1, the paper's: the smallest of its own search points
          pooled_  Algorithm 1 pooled: the smallest of every point measured on the checkpoint (Algorithm 2's too)
          alg2_    Algorithm 2: the Delta sweep (or the authors' bisection)
          edge_    with TrackingSettings.edge: the edge search (grok_lib.complexity.edge; not in the paper)
        per answer, for every coder of grok_lib.complexity.coders.CODERS (paper, symbols, ...):
          {prefix}{coder}_bytes, {prefix}{coder}_bits, {prefix}{coder}_codec (the compressor it used),
          {prefix}bound_{coder} (Eq. 4, delta = 0.05, train 0-1 error of the coarse-grained net),
          {prefix}description_length_{coder}_bits (Fig. 11: model bits + data bits)
        and once per answer: {prefix}tau (NaN = no low-rank step), {prefix}delta, {prefix}ranks (JSON name ->
          factor rank or null), {prefix}train_loss, {prefix}train_acc, {prefix}test_loss, {prefix}test_acc
          (of the coarse-grained net), {prefix}n_evaluations
        per checkpoint: naive_bytes, naive_bits (Fig. 9), reference_train_loss, n_train, seconds

grok_lib.paper.pipeline writes the same rows for a run's final checkpoint to rate_distortion.csv. Tables
written before these names are read with LEGACY_COLUMNS applied (`read_table`), so old and new rows mix.

The table is rewritten atomically after each checkpoint, so an interrupted pass resumes at the first
checkpoint it had not finished and a second call on a finished run costs nothing. All eps of one
checkpoint share one ComplexityProblem, so within a checkpoint the pooled complexity is non-increasing
in eps by construction (grok_lib.complexity.search). L2 norm and effective rank are already in metrics.csv;
`load_complexity` joins the two tables (plus op, regime, seed) for plotting.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch.nn.functional as F
from tqdm.auto import tqdm

from .bounds import generalization_bound, total_description_length
from .coders import naive_size
from .measurement import PAPER, Measurement
from .problem import described_tensors, ComplexityResult, check_eps
from .results import bound_column, length_column, size_column  # noqa: F401 -- the tables' column names
from .table import MeasuredTable
from ..training.data import make_split
from ..training.train import pick_device
from ..errors import require
from .search import PAPER_EPS, complexity_curve, problem_for
from ..jobs.runner import Job, Runner
from ..store import Run

COMPLEXITY_FILE = "complexity.csv"
SETTINGS_FILE = "complexity.json"


@dataclass(frozen=True)
class TrackingSettings:
    """How a run's checkpoints are measured; stored with the table so results are never mixed."""

    eps: tuple = PAPER_EPS  # distortion bounds (the authors' 4 ... 0.0625)
    # Algorithm 1's Bayesian search (budget, seed, refine, reallocate), the coder it minimizes, the factor
    # split, allocation and sidedness, Algorithm 2's method; every answer (alg1_, pooled_, alg2_) is recorded
    how: Measurement = PAPER
    # not in the paper: also the edge search (grok_lib.complexity.edge) at every eps, in the edge_ columns;
    # Algorithm 1's Bayesian search stays in the alg1_ columns
    edge: bool = False

    def __post_init__(self):
        require(isinstance(self.eps, (tuple, list)) and len(self.eps) > 0, "eps", "give at least one distortion bound")
        for eps in self.eps:
            check_eps(eps)
        object.__setattr__(self, "eps", tuple(sorted(set(float(e) for e in self.eps))))
        require(isinstance(self.how, Measurement), "how", f"must be a Measurement, got {type(self.how).__name__}")
        require(self.how.algorithm == 1 and self.how.search == "bayes" and not self.how.pooled, "how",
                "tracking records every answer (Algorithm 1's Bayesian search, pooled, Algorithm 2; edge=True "
                "adds the edge search): give a measurement with algorithm=1, search='bayes', pooled=False")
        require(isinstance(self.edge, bool), "edge", f"must be True or False, got {self.edge!r}")

    def to_json(self) -> str:
        return json.dumps({"eps": list(self.eps), "edge": self.edge, "how": self.how.as_dict()}, sort_keys=True,
                          indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrackingSettings:
        """Stored settings (of today's or an older format) as a TrackingSettings."""
        data = as_stored(text)
        require(set(data) == {"eps", "edge", "how"}, "settings",
                f"stored settings with fields no measurement has: {sorted(set(data) - {'eps', 'edge', 'how'})}")
        return cls(eps=tuple(data["eps"]), how=Measurement.from_dict(data["how"]), edge=data["edge"])


ALGORITHM_1, POOLED, ALGORITHM_2, EDGE = "alg1_", "pooled_", "alg2_", "edge_"  # the answers' column prefixes

# every column name complexity.csv / rate_distortion.csv used before the prefixes, and its name now
LEGACY_COLUMNS = {
    "complexity_bytes": "alg1_paper_bytes", "complexity_bits": "alg1_paper_bits",
    "symbols_bytes": "alg1_symbols_bytes", "symbols_bits": "alg1_symbols_bits", "symbols_codec": "alg1_symbols_codec",
    "tau": "alg1_tau", "delta": "alg1_delta", "ranks": "alg1_ranks",
    "coarse_train_loss": "alg1_train_loss", "coarse_train_acc": "alg1_train_acc",
    "coarse_test_loss": "alg1_test_loss", "coarse_test_acc": "alg1_test_acc", "n_evaluations": "alg1_n_evaluations",
    "bound": "alg1_bound_paper", "bound_symbols": "alg1_bound_symbols",
    "description_length_bits": "alg1_description_length_paper_bits",
    "description_length_symbols_bits": "alg1_description_length_symbols_bits",
    "pooled_bytes": "pooled_paper_bytes", "pooled_bits": "pooled_paper_bits", "pooled_bound": "pooled_bound_paper",
    "pooled_description_length_bits": "pooled_description_length_paper_bits",
    "alg2_bytes": "alg2_paper_bytes", "alg2_bits": "alg2_paper_bits", "alg2_bound": "alg2_bound_paper",
}


def answer_columns(prefix: str, result: ComplexityResult) -> dict:
    """One answer's columns, every name starting with `prefix`: per coder of result.sizes (= CODERS) its
    bytes, bits, codec, Eq. 4 bound (confidence 1 - 0.05) and description length; then tau, delta, ranks,
    losses, accuracies and n_evaluations (ComplexityResult.as_row)."""
    row = {k: v for k, v in result.as_row().items() if k not in ("algorithm", "eps")}
    error = 1.0 - result.train_acc if math.isfinite(result.train_acc) else math.nan
    for coder, size in result.sizes.items():
        row[bound_column("", coder)] = generalization_bound(error, size.n_bits, result.n_train) \
            if math.isfinite(error) else math.nan
        row[length_column("", coder)] = total_description_length(size.n_bits, result.train_loss, result.n_train)
    return {prefix + name: value for name, value in row.items()}


def upgrade_columns(frame: pd.DataFrame, legacy: dict = LEGACY_COLUMNS) -> pd.DataFrame:
    """`frame` with every old column name of `legacy` replaced by its new one (values merged where a frame
    holds both)."""
    old = [c for c in frame.columns if c in legacy]
    both = [c for c in old if legacy[c] in frame.columns]
    out = frame.rename(columns={c: legacy[c] for c in old if c not in both})
    for column in both:
        out[legacy[column]] = out[legacy[column]].combine_first(out[column])
    return _counts_as_integers(out.drop(columns=both))


COUNTS = ("_bytes", "_bits", "n_train", "n_evaluations", "epoch", "step")  # columns that hold whole numbers


def _counts_as_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Count columns (sizes, evaluations, epochs) as integers wherever every value is a whole number: a table
    that once held a missing value was written with floats, and should read (and print) as any other does."""
    for column in frame.columns:
        values = frame[column]
        if column.endswith(COUNTS) and values.dtype.kind == "f" and len(values) and values.notna().all() \
                and (values == values.round()).all():
            frame[column] = values.astype("int64")
    return frame


def read_table(path: Path) -> pd.DataFrame:
    """A stored complexity.csv or rate_distortion.csv, in today's column names (LEGACY_COLUMNS applied)."""
    return upgrade_columns(pd.read_csv(path))


def measure_checkpoint(run: Run, epoch: int, settings: TrackingSettings, data, device: str = "cpu") -> list[dict]:
    """The complexity.csv rows of one checkpoint: one per eps; data: the run's data split (training.data)."""
    start = time.perf_counter()
    model = run.load_model(epoch, device)
    problem = problem_for(model, F.cross_entropy, (data.train_x, data.train_y), (data.test_x, data.test_y),
                          settings.how)
    naive = naive_size(described_tensors(model))
    rows = []
    for point in complexity_curve(problem, settings.eps, settings.how, with_edge=settings.edge):
        row = dict(epoch=epoch, eps=point.algorithm_1.eps)
        for prefix, result in ((ALGORITHM_1, point.algorithm_1), (POOLED, point.algorithm_1_pooled),
                               (ALGORITHM_2, point.algorithm_2), (EDGE, point.edge)):
            if result is not None:
                row.update(answer_columns(prefix, result))
        rows.append(dict(row, naive_bytes=naive, naive_bits=8 * naive, reference_train_loss=problem.reference_loss,
                         n_train=point.algorithm_1.n_train))
    for row in rows:
        row["seconds"] = (time.perf_counter() - start) / len(rows)
    return rows


def as_stored(text: str) -> dict:
    """Stored settings JSON read in today's fields: the older flat format (seed, objective, split, bayes with
    refine and reallocate, ...) mapped into `how`; a setting added since it was written has the default that
    reproduces the old behaviour (e.g. refine 0, allocation global). A value of an option since removed is
    kept only where it differs from the one behaviour left, so that such a table is refused, not mixed."""
    data = json.loads(text)
    if not isinstance(data, dict):
        return {"unreadable": data}
    if "how" not in data:
        old, bayes = dict(data), dict(data.get("bayes", {}))
        how = {"seed": old.pop("seed", 0), "objective": old.pop("objective", "paper"),
               "one_sided": old.pop("one_sided", False), "algorithm_2": old.pop("algorithm_2", "sweep"),
               "allocation": old.pop("allocation", "global"), "factor_split": old.pop("split", "left"),
               "refine": bayes.pop("refine", 0), "reallocate": bayes.pop("reallocate", 0), "budget": bayes}
        if bayes.get("n_candidates", 2000) == 2000:  # removed: 2000 is what every search has used
            bayes.pop("n_candidates", None)
        if old.get("bound_delta", 0.05) == 0.05:  # removed: Eq. 4's bound is at confidence 1 - 0.05
            old.pop("bound_delta", None)
        old.pop("bayes", None)
        data = {**old, "how": how}
    return _with_defaults(data, json.loads(TrackingSettings().to_json()))


def _with_defaults(stored, defaults):
    """`stored` (settings JSON) with every key it lacks taken from `defaults`, recursively."""
    if not isinstance(stored, dict) or not isinstance(defaults, dict):
        return stored
    return {**defaults, **{k: _with_defaults(v, defaults.get(k)) for k, v in stored.items()}}


def complexity_table(run: Run) -> MeasuredTable:
    """The run's complexity.csv beside complexity.json (grok_lib.complexity.table)."""
    return MeasuredTable(run, COMPLEXITY_FILE, SETTINGS_FILE, as_stored, upgrade_columns)


def check_settings(run: Run, settings: TrackingSettings) -> bool:
    """Whether settings are already stored; refuses (before any write) a table made with other settings."""
    return complexity_table(run).check(settings)


def read_complexity(run: Run) -> pd.DataFrame:
    """The stored complexity table (empty with an `epoch` column when nothing was measured)."""
    return complexity_table(run).read()


def checkpoint_job(run_dir: str, config, epoch: int, settings: TrackingSettings, device: str = "cpu") -> list[dict]:
    """A job (grok_lib.jobs): the complexity.csv rows of one checkpoint, measured where the job runs; it
    writes nothing (the caller stores the rows with `store_rows`)."""
    run = Run(Path(run_dir), config)
    return measure_checkpoint(run, epoch, settings, make_split(config.op, config.p, config.train_frac, config.seed),
                              device)


def store_rows(run: Run, settings: TrackingSettings, rows: list[dict], lock_wait: float = math.inf) -> pd.DataFrame:
    """Merge measured rows into the run's complexity.csv, replacing rows of the same checkpoints; the table is
    read and rewritten (atomically) under the run's "complexity" lock, so concurrent writers merge."""
    return complexity_table(run).store(settings, rows, lock_wait)


def track_complexity(run: Run, settings: TrackingSettings = TrackingSettings(), device: str = "cpu",
                     progress: bool = True, epochs=None, workers: int = 1, lock_wait: float = math.inf) -> pd.DataFrame:
    """Measure every stored checkpoint (or `epochs`) not yet in complexity.csv; return the whole table.

    The run's "complexity" lock is held while the table is read and rewritten: a second process measuring
    the same run waits (up to `lock_wait` seconds), then measures only what the first left undone.

    workers > 1 measures that many checkpoints at once in separate processes (one torch thread each); the
    table is rewritten as each one finishes, so an interrupted pass keeps every finished checkpoint.
    """
    require(isinstance(settings, TrackingSettings), "settings", "must be a TrackingSettings")
    require(isinstance(workers, int) and workers >= 1, "workers", f"must be a positive integer, got {workers!r}")
    device = str(pick_device(device))  # cpu, cuda or cuda:N where this torch has it; anything else is refused
    available = run.checkpoints()
    require(len(available) > 0, "run", f"{run.path} has no checkpoints yet; train it first")
    wanted = available if epochs is None else sorted(set(epochs))
    missing = sorted(set(wanted) - set(available))
    require(not missing, "epochs", f"no checkpoints at {missing}; stored: {available}")
    with run.lock("complexity", lock_wait):  # one writer at a time; the table is read after taking it
        return _track_locked(run, settings, device, progress, wanted, workers)


def _track_locked(run: Run, settings: TrackingSettings, device: str, progress: bool, wanted: list[int],
                  workers: int) -> pd.DataFrame:
    check_settings(run, settings)
    table = read_complexity(run)
    done = {int(e) for e, group in table.groupby("epoch") if set(group.eps) >= set(settings.eps)}
    todo = [e for e in wanted if e not in done]
    if not todo:
        return table
    config = run.config
    bar = tqdm(total=len(todo), disable=not progress, desc=f"complexity {run.path.name}", unit="checkpoint")

    def store(epoch: int, new_rows: list[dict]) -> pd.DataFrame:
        frame = complexity_table(run).merge(settings, new_rows)
        last = frame[frame.epoch == epoch]
        kb = _at(last, 1.0, size_column(ALGORITHM_1, "paper")) / 1e3
        bar.set_postfix(epoch=epoch, kB_at_eps1=f"{kb:.1f}", refresh=False)
        bar.update()
        return frame

    jobs = [Job(f"epoch {epoch}", checkpoint_job, (str(run.path), config, epoch, settings, device)) for epoch in todo]
    try:
        # results come back here, the table's only writer, which rewrites it after every checkpoint
        Runner(workers, progress=False).run(jobs, on_result=lambda job, rows: store(rows[0]["epoch"], rows))
        return read_complexity(run)
    finally:
        bar.close()


def _at(frame: pd.DataFrame, eps: float, column: str) -> float:
    hit = frame.loc[frame.eps == eps, column]
    return float(hit.iloc[0]) if len(hit) else math.nan


def load_complexity(run: Run) -> pd.DataFrame:
    """complexity.csv joined with metrics.csv on epoch (train/test accuracy, L2 norm, effective rank...),
    plus the run's op, regime, seed and init, ready for plotting one row per (epoch, eps)."""
    # .copy(): one block of columns, so adding more raises no fragmentation warning in front of a reader
    table = read_complexity(run).merge(run.metrics(), on="epoch", how="left").copy()
    return table.assign(op=run.config.op, regime=run.config.regime, seed=run.config.seed, init=run.config.init)
