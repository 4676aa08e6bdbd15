"""Complexity of every stored checkpoint of a run, for a list of eps, kept in the run directory.

Files written next to metrics.csv::

    complexity.json   the TrackingSettings used (a later call with other settings is refused)
    complexity.csv    one row per (epoch, eps), columns:
        epoch, eps
        three answers, each under its prefix, with the same columns (`answer_columns`):
          alg1_    Algorithm 1, the paper's: the smallest of its own search points
          pooled_  Algorithm 1 pooled: the smallest of every point measured on the checkpoint (Algorithm 2's too)
          alg2_    Algorithm 2: the Delta sweep (or the authors' bisection)
          edge_    with TrackingSettings.edge: the edge search (grok_lib.complexity.edge; not in the paper)
        per answer, for every coder of grok_lib.complexity.coders.CODERS (paper, symbols, ...):
          {prefix}{coder}_bytes, {prefix}{coder}_bits, {prefix}{coder}_codec (the compressor it used),
          {prefix}bound_{coder} (Eq. 4, delta = bound_delta, train 0-1 error of the coarse-grained net),
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch.nn.functional as F
from tqdm.auto import tqdm

from .bounds import generalization_bound, total_description_length
from .coders import naive_size
from .allocation import check_allocation
from .coarse import check_split
from .problem import described_tensors, OBJECTIVES, ComplexityProblem, ComplexityResult, check_eps
from ..training.data import make_split
from ..training.train import pick_device
from ..errors import GrokError, require
from .quantization import ALGORITHM_2_METHODS
from .search import PAPER_EPS, BayesConfig, complexity_curve
from ..jobs.runner import Job, Runner
from ..files import write_text_atomic
from ..store import Run

COMPLEXITY_FILE = "complexity.csv"
SETTINGS_FILE = "complexity.json"


@dataclass(frozen=True)
class TrackingSettings:
    """How a run's checkpoints are measured; stored with the table so results are never mixed."""

    eps: tuple = PAPER_EPS  # distortion bounds (the authors' 4 ... 0.0625)
    bayes: BayesConfig = field(default_factory=BayesConfig)  # Algorithm 1's budget and surrogate
    seed: int = 0  # seeds Algorithm 1's random points and surrogate
    one_sided: bool = False  # the code's L(theta_hat) <= L(theta) + eps instead of Eq. 7
    objective: str = "paper"  # the coder Algorithm 1 minimizes
    algorithm_2: str = "sweep"  # sweep (the paper's Algorithm 2) | bisection (the authors' code)
    bound_delta: float = 0.05  # Eq. 4's confidence parameter
    allocation: str = "global"  # one Delta (the paper's) | "sensitivity": one per matrix (complexity.allocation)
    split: str = "left"  # low-rank factors U S, V^T (the authors') | "balanced" (complexity.coarse.SPLITS)
    # not in the paper: also the edge search (grok_lib.complexity.edge) at every eps, in the edge_ columns;
    # Algorithm 1's Bayesian search stays in the alg1_ columns
    edge: bool = False

    def __post_init__(self):
        require(len(self.eps) > 0, "eps", "give at least one distortion bound")
        for eps in self.eps:
            check_eps(eps)
        object.__setattr__(self, "eps", tuple(sorted(set(float(e) for e in self.eps))))
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", f"must be an integer >= 0, got {self.seed!r}")
        require(self.objective in OBJECTIVES, "objective",
                f"unknown coder {self.objective!r}; allowed: {', '.join(OBJECTIVES)}")
        require(self.algorithm_2 in ALGORITHM_2_METHODS, "algorithm_2",
                f"unknown method {self.algorithm_2!r}; allowed: {', '.join(ALGORITHM_2_METHODS)}")
        require(isinstance(self.edge, bool), "edge", f"must be True or False, got {self.edge!r}")
        require(0.0 < self.bound_delta < 1.0, "bound_delta", f"must lie in (0, 1), got {self.bound_delta!r}")
        check_allocation(self.allocation)
        check_split(self.split)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)


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


def size_column(prefix: str, coder: str, unit: str = "bytes") -> str:
    """The column of an answer's size under a coder: {prefix}{coder}_bytes (unit "bits": _bits)."""
    return f"{prefix}{coder}_{unit}"


def bound_column(prefix: str, coder: str) -> str:
    """The column of an answer's Eq. 4 bound with K from a coder."""
    return f"{prefix}bound_{coder}"


def length_column(prefix: str, coder: str) -> str:
    """The column of an answer's total description length (bits) with model bits from a coder."""
    return f"{prefix}description_length_{coder}_bits"


def answer_columns(prefix: str, result: ComplexityResult, bound_delta: float = 0.05) -> dict:
    """One answer's columns, every name starting with `prefix`: per coder of result.sizes (= CODERS) its
    bytes, bits, codec, Eq. 4 bound and description length; then tau, delta, ranks, losses, accuracies and
    n_evaluations (ComplexityResult.as_row)."""
    row = {k: v for k, v in result.as_row().items() if k not in ("algorithm", "eps")}
    error = 1.0 - result.train_acc if math.isfinite(result.train_acc) else math.nan
    for coder, size in result.sizes.items():
        row[bound_column("", coder)] = generalization_bound(error, size.n_bits, result.n_train, bound_delta) \
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
    return out.drop(columns=both)


def read_table(path: Path) -> pd.DataFrame:
    """A stored complexity.csv or rate_distortion.csv, in today's column names (LEGACY_COLUMNS applied)."""
    return upgrade_columns(pd.read_csv(path))


def measure_checkpoint(run: Run, epoch: int, settings: TrackingSettings, split, device: str = "cpu") -> list[dict]:
    """The complexity.csv rows of one checkpoint: one per eps."""
    start = time.perf_counter()
    model = run.load_model(epoch, device)
    problem = ComplexityProblem(model, F.cross_entropy, (split.train_x, split.train_y), (split.test_x, split.test_y),
                                one_sided=settings.one_sided, objective=settings.objective,
                                allocation=settings.allocation, split=settings.split)
    naive = naive_size(described_tensors(model))
    rows = []
    for point in complexity_curve(problem, settings.eps, settings.bayes, settings.seed,
                                  algorithm_2_method=settings.algorithm_2, with_edge=settings.edge):
        row = dict(epoch=epoch, eps=point.algorithm_1.eps)
        for prefix, result in ((ALGORITHM_1, point.algorithm_1), (POOLED, point.algorithm_1_pooled),
                               (ALGORITHM_2, point.algorithm_2), (EDGE, point.edge)):
            if result is not None:
                row.update(answer_columns(prefix, result, settings.bound_delta))
        rows.append(dict(row, naive_bytes=naive, naive_bits=8 * naive, reference_train_loss=problem.reference_loss,
                         n_train=point.algorithm_1.n_train))
    for row in rows:
        row["seconds"] = (time.perf_counter() - start) / len(rows)
    return rows


def check_settings(run: Run, settings: TrackingSettings) -> bool:
    """Whether settings are already stored; refuses (before any write) a table made with other settings."""
    path = run.path / SETTINGS_FILE
    if not path.exists():
        table = run.path / COMPLEXITY_FILE
        require(not table.exists(), "settings", f"{table} has rows but no {SETTINGS_FILE}: the settings they "
                f"were measured with are unknown, so nothing is added to it; move {table.name} aside (to keep it) "
                "and measure again")
        return False
    wanted = json.loads(settings.to_json())
    stored = as_stored(path.read_text())
    if stored != wanted:
        diff = {k: (stored.get(k), wanted.get(k)) for k in wanted if stored.get(k) != wanted.get(k)}
        raise GrokError("settings", f"{run.path / COMPLEXITY_FILE} was measured with other settings "
                        f"(field: stored vs requested) {diff}; keep the stored settings, or to measure anew "
                        f"move both {COMPLEXITY_FILE} and {SETTINGS_FILE} out of {run.path}")
    return True


def as_stored(text: str) -> dict:
    """Settings JSON as stored, read in today's fields: a setting added since it was written has the
    default that reproduces the old behaviour (e.g. bayes.refine 0, allocation global)."""
    return _with_defaults(json.loads(text), json.loads(TrackingSettings().to_json()))


def _with_defaults(stored, defaults):
    """`stored` (settings JSON) with every key it lacks taken from `defaults`, recursively."""
    if not isinstance(stored, dict) or not isinstance(defaults, dict):
        return stored
    return {**defaults, **{k: _with_defaults(v, defaults.get(k)) for k, v in stored.items()}}


def read_complexity(run: Run) -> pd.DataFrame:
    """The stored complexity table (empty with an `epoch` column when nothing was measured)."""
    path = run.path / COMPLEXITY_FILE
    if not path.exists():
        return pd.DataFrame({"epoch": pd.Series(dtype=int), "eps": pd.Series(dtype=float)})
    return read_table(path)


def checkpoint_job(run_dir: str, config, epoch: int, settings: TrackingSettings, device: str = "cpu") -> list[dict]:
    """A job (grok_lib.jobs): the complexity.csv rows of one checkpoint, measured where the job runs; it
    writes nothing (the caller stores the rows with `store_rows`)."""
    run = Run(Path(run_dir), config)
    return measure_checkpoint(run, epoch, settings, make_split(config.op, config.p, config.train_frac, config.seed),
                              device)


def store_rows(run: Run, settings: TrackingSettings, rows: list[dict], lock_wait: float = math.inf) -> pd.DataFrame:
    """Merge measured rows into the run's complexity.csv, replacing rows of the same checkpoints; the table is
    read and rewritten (atomically) under the run's "complexity" lock, so concurrent writers merge."""
    with run.lock("complexity", lock_wait):
        return _merge_rows(run, settings, rows)


def _merge_rows(run: Run, settings: TrackingSettings, rows: list[dict]) -> pd.DataFrame:
    """store_rows for a caller that holds the run's "complexity" lock."""
    if not check_settings(run, settings):
        write_text_atomic(run.path / SETTINGS_FILE, settings.to_json())
    table = read_complexity(run)
    new = pd.DataFrame(rows)
    replaced = pd.MultiIndex.from_frame(table[["epoch", "eps"]]).isin(pd.MultiIndex.from_frame(new[["epoch", "eps"]]))
    frame = pd.concat([table[~replaced], new], ignore_index=True)  # only rows of the same (epoch, eps) go
    frame = frame.sort_values(["epoch", "eps"], ignore_index=True)
    write_text_atomic(run.path / COMPLEXITY_FILE, frame.to_csv(index=False))
    return frame


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
        frame = _merge_rows(run, settings, new_rows)
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
