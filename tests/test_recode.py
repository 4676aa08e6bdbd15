"""Recoding a stored table (grok_lib.complexity.recode): after a coder's format changes, the sizes are
computed again from the checkpoints and equal what a fresh measurement writes; the paper's size proves
that the rebuilt network is the measured one."""

import pandas as pd
import pytest

from grok_lib.complexity.recode import RECODED, answer_prefixes
from grok_lib.complexity.tracking import COMPLEXITY_FILE, TrackingSettings, bound_column, length_column, \
    size_column, track_complexity
from grok_lib.complexity.measurement import PAPER, BayesConfig
from grok_lib.errors import GrokError
from grok_lib.paper.recode_runs import recode_run

FAST = TrackingSettings(eps=(1.0, 0.25), how=PAPER.but(budget=BayesConfig(n_random=2, n_guided=2, estimator="ET",
                                                                         n_trees=4)), edge=True)


def stale_copy(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` as an older format would have written it: every recoded size and what is built on it off."""
    old = frame.copy()
    for prefix in answer_prefixes(frame):
        for coder in RECODED:
            old[size_column(prefix, coder)] -= 4
            old[size_column(prefix, coder, "bits")] -= 32
            old[bound_column(prefix, coder)] -= 0.01
            old[length_column(prefix, coder)] -= 32
    return old


def test_a_stale_table_is_recoded_to_what_a_fresh_measurement_writes(run):
    track_complexity(run, FAST, progress=False, epochs=run.checkpoints()[-2:])
    path = run.path / COMPLEXITY_FILE
    fresh_text = path.read_text()
    fresh = pd.read_csv(path)
    assert answer_prefixes(fresh) == ["alg1_", "pooled_", "alg2_", "edge_"]
    path.write_text(stale_copy(fresh).to_csv(index=False))
    assert recode_run(run.path, progress=False) == [f"{run.path.name}/{COMPLEXITY_FILE}"]
    assert path.read_text() == fresh_text  # every value, the untouched columns byte for byte
    assert recode_run(run.path, progress=False) == []  # nothing left to change: the file is not rewritten


def test_a_row_whose_network_cannot_be_rebuilt_is_refused_and_the_table_kept(run):
    track_complexity(run, FAST, progress=False, epochs=run.checkpoints()[-1:])
    path = run.path / COMPLEXITY_FILE
    frame = pd.read_csv(path)
    frame.loc[0, "alg1_delta"] *= 1.5  # not the coarse-graining that was measured
    text = frame.to_csv(index=False)
    path.write_text(text)
    with pytest.raises(GrokError, match="^table: .*paper size"):
        recode_run(run.path, progress=False)
    assert path.read_text() == text


def test_no_writer_of_a_measured_table_ever_lowers_its_row_count(run):
    """complexity.csv, tighter.csv and rate_distortion.csv are written by one layer (complexity.table): a merge
    replaces rows of the same (epoch, eps) only, and a table of other settings is refused, not rewritten."""
    from grok_lib.complexity.tracking import complexity_table
    from grok_lib.paper.pipeline import rate_distortion_table
    from grok_lib.paper.tighter import tighter_table

    settings = TrackingSettings(eps=(1.0, 0.5))
    other = TrackingSettings(eps=(2.0,))
    row = dict(alg1_paper_bytes=1.0, alg1_delta=0.1)
    for table in (complexity_table(run), tighter_table(run), rate_distortion_table(run)):
        counts = []
        for rows in ([dict(row, epoch=1, eps=1.0), dict(row, epoch=1, eps=0.5)], [dict(row, epoch=2, eps=1.0)],
                     [dict(row, epoch=1, eps=1.0, alg1_paper_bytes=2.0)], []):
            counts.append(len(table.store(settings, rows)) if rows else len(table.read()))
        assert counts == [2, 3, 3, 3], table.name
        before = table.path.read_text()
        with pytest.raises(GrokError, match="^settings: .*measured with other settings"):
            table.store(other, [dict(row, epoch=3, eps=2.0)])
        assert table.path.read_text() == before
