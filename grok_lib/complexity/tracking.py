"""Complexity of every stored checkpoint of a run, for a list of eps, kept in the run directory.

Files written next to metrics.csv::

    complexity.json   the TrackingSettings used (a later call with other settings is refused)
    complexity.csv    one row per (epoch, eps), columns:
        epoch, eps
        Algorithm 1 (the paper's: the smallest of its own points): complexity_bytes / complexity_bits (paper coder),
          symbols_bytes / symbols_bits / symbols_codec, tau (NaN = no low-rank step), delta, ranks (JSON
          name -> factor rank or null), coarse_train_loss, coarse_train_acc, coarse_test_loss,
          coarse_test_acc, n_evaluations, bound / bound_symbols (Eq. 4, delta = 0.05, train 0-1 error of
          the coarse-grained net), description_length_bits / description_length_symbols_bits (Fig. 11)
        Algorithm 1 pooled (the smallest of every point measured on the checkpoint): pooled_bytes,
          pooled_bits, pooled_symbols_bytes, pooled_tau, pooled_delta, pooled_bound, pooled_description_length_bits
        Algorithm 2 (the sweep, or the code's bisection): alg2_bytes, alg2_bits, alg2_symbols_bytes, alg2_symbols_bits, alg2_delta,
          alg2_train_loss, alg2_train_acc, alg2_n_evaluations, alg2_bound
        per checkpoint: naive_bytes, naive_bits (Fig. 9), reference_train_loss, n_train, seconds

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
from .problem import OBJECTIVES, ComplexityProblem, ComplexityResult, check_eps
from ..training.data import make_split
from ..errors import GrokError, require
from .search import ALGORITHM_2_METHODS, PAPER_EPS, BayesConfig, complexity_curve
from ..jobs import Job, Runner
from ..store import Run, write_text_atomic

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
        require(0.0 < self.bound_delta < 1.0, "bound_delta", f"must lie in (0, 1), got {self.bound_delta!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)


def _algorithm_1_columns(result: ComplexityResult, delta: float) -> dict:
    bits, n = result.paper_bits, result.n_train
    error = 1.0 - result.train_acc if math.isfinite(result.train_acc) else math.nan
    bound = generalization_bound(error, bits, n, delta) if math.isfinite(error) else math.nan
    bound_symbols = generalization_bound(error, result.symbols_bits, n, delta) if math.isfinite(error) else math.nan
    return dict(
        complexity_bytes=result.paper_bytes, complexity_bits=bits, symbols_bytes=result.symbols_bytes,
        symbols_bits=result.symbols_bits, symbols_codec=result.symbols_codec,
        tau=math.nan if result.tau is None else result.tau, delta=result.delta, ranks=json.dumps(result.ranks),
        coarse_train_loss=result.train_loss, coarse_train_acc=result.train_acc,
        coarse_test_loss=result.test_loss, coarse_test_acc=result.test_acc, n_evaluations=result.n_evaluations,
        bound=bound, bound_symbols=bound_symbols,
        description_length_bits=total_description_length(bits, result.train_loss, n),
        description_length_symbols_bits=total_description_length(result.symbols_bits, result.train_loss, n))


def _pooled_columns(result: ComplexityResult, delta: float) -> dict:
    error = 1.0 - result.train_acc if math.isfinite(result.train_acc) else math.nan
    return dict(pooled_bytes=result.paper_bytes, pooled_bits=result.paper_bits,
                pooled_symbols_bytes=result.symbols_bytes, pooled_tau=math.nan if result.tau is None else result.tau,
                pooled_delta=result.delta,
                pooled_bound=generalization_bound(error, result.paper_bits, result.n_train, delta)
                if math.isfinite(error) else math.nan,
                pooled_description_length_bits=total_description_length(result.paper_bits, result.train_loss,
                                                                         result.n_train))


def _algorithm_2_columns(result: ComplexityResult, delta: float) -> dict:
    error = 1.0 - result.train_acc
    return dict(alg2_bytes=result.paper_bytes, alg2_bits=result.paper_bits, alg2_symbols_bytes=result.symbols_bytes,
                alg2_symbols_bits=result.symbols_bits, alg2_delta=result.delta, alg2_train_loss=result.train_loss,
                alg2_train_acc=result.train_acc, alg2_n_evaluations=result.n_evaluations,
                alg2_bound=generalization_bound(error, result.paper_bits, result.n_train, delta)
                if math.isfinite(error) else math.nan)


def measure_checkpoint(run: Run, epoch: int, settings: TrackingSettings, split, device: str = "cpu") -> list[dict]:
    """The complexity.csv rows of one checkpoint: one per eps."""
    start = time.perf_counter()
    model = run.load_model(epoch, device)
    problem = ComplexityProblem(model, F.cross_entropy, (split.train_x, split.train_y), (split.test_x, split.test_y),
                                one_sided=settings.one_sided, objective=settings.objective)
    naive = naive_size(dict(model.named_parameters()))
    rows = []
    for point in complexity_curve(problem, settings.eps, settings.bayes, settings.seed,
                                  algorithm_2_method=settings.algorithm_2):
        rows.append(dict(epoch=epoch, eps=point.algorithm_1.eps,
                         **_algorithm_1_columns(point.algorithm_1, settings.bound_delta),
                         **_pooled_columns(point.algorithm_1_pooled, settings.bound_delta),
                         **_algorithm_2_columns(point.algorithm_2, settings.bound_delta),
                         naive_bytes=naive, naive_bits=8 * naive, reference_train_loss=problem.reference_loss,
                         n_train=point.algorithm_1.n_train))
    for row in rows:
        row["seconds"] = (time.perf_counter() - start) / len(rows)
    return rows


def _check_settings(run: Run, settings: TrackingSettings) -> bool:
    """Whether settings are already stored; refuses (before any write) a table made with other settings."""
    path = run.path / SETTINGS_FILE
    if not path.exists():
        return False
    stored = json.loads(path.read_text())
    wanted = json.loads(settings.to_json())
    if stored != wanted:
        diff = {k: (stored.get(k), wanted.get(k)) for k in wanted if stored.get(k) != wanted.get(k)}
        raise GrokError("settings", f"{run.path / COMPLEXITY_FILE} was measured with other settings "
                        f"(field: stored vs requested) {diff}; delete it or keep the stored settings")
    return True


def read_complexity(run: Run) -> pd.DataFrame:
    """The stored complexity table (empty with an `epoch` column when nothing was measured)."""
    path = run.path / COMPLEXITY_FILE
    if not path.exists():
        return pd.DataFrame({"epoch": pd.Series(dtype=int), "eps": pd.Series(dtype=float)})
    return pd.read_csv(path)


def _measure_job(run_dir: str, config, epoch: int, settings: TrackingSettings, device: str) -> list[dict]:
    run = Run(Path(run_dir), config)
    return measure_checkpoint(run, epoch, settings, make_split(config.op, config.p, config.train_frac, config.seed),
                              device)


def track_complexity(run: Run, settings: TrackingSettings = TrackingSettings(), device: str = "cpu",
                     progress: bool = True, epochs=None, workers: int = 1) -> pd.DataFrame:
    """Measure every stored checkpoint (or `epochs`) not yet in complexity.csv; return the whole table.

    workers > 1 measures that many checkpoints at once in separate processes (one torch thread each); the
    table is rewritten as each one finishes, so an interrupted pass keeps every finished checkpoint.
    """
    require(isinstance(settings, TrackingSettings), "settings", "must be a TrackingSettings")
    require(isinstance(workers, int) and workers >= 1, "workers", f"must be a positive integer, got {workers!r}")
    available = run.checkpoints()
    require(len(available) > 0, "run", f"{run.path} has no checkpoints yet; train it first")
    wanted = available if epochs is None else sorted(set(epochs))
    missing = sorted(set(wanted) - set(available))
    require(not missing, "epochs", f"no checkpoints at {missing}; stored: {available}")
    settings_stored = _check_settings(run, settings)
    table = read_complexity(run)
    done = {int(e) for e, group in table.groupby("epoch") if set(group.eps) >= set(settings.eps)}
    todo = [e for e in wanted if e not in done]
    if not todo:
        return table
    if not settings_stored:
        write_text_atomic(run.path / SETTINGS_FILE, settings.to_json())
    config = run.config
    rows = table[~table.epoch.isin(todo)].to_dict("records")
    bar = tqdm(total=len(todo), disable=not progress, desc=f"complexity {run.path.name}", unit="checkpoint")

    def store(epoch: int, new_rows: list[dict]) -> pd.DataFrame:
        rows.extend(new_rows)
        frame = pd.DataFrame(rows).sort_values(["epoch", "eps"], ignore_index=True)
        write_text_atomic(run.path / COMPLEXITY_FILE, frame.to_csv(index=False))
        last = frame[frame.epoch == epoch]
        bar.set_postfix(epoch=epoch, kB_at_eps1=f"{_at(last, 1.0, 'complexity_bytes') / 1e3:.1f}", refresh=False)
        bar.update()
        return frame

    jobs = [Job(f"epoch {epoch}", _measure_job, (str(run.path), config, epoch, settings, device)) for epoch in todo]
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
    table = read_complexity(run).merge(run.metrics(), on="epoch", how="left")
    return table.assign(op=run.config.op, regime=run.config.regime, seed=run.config.seed, init=run.config.init)
