"""grok_lib.paper.pipeline: a profile's work as one set of jobs leaves nothing for the notebooks to compute."""

import pytest

from grok_lib.paper.pipeline import compute, final_jobs, track_jobs, train_jobs
from grok_lib.paper.profiles import get_profile
from grok_lib.store import RunStore


@pytest.mark.slow
def test_compute_trains_tracks_and_measures_the_ci_grid_in_one_pass(tmp_path):
    p = get_profile("ci")
    store = RunStore(tmp_path)
    configs = p.configs()
    assert len(train_jobs(configs, store)) == len(configs)
    compute(p, store)
    runs = [store.run(c) for c in configs]
    assert all(r.is_complete for r in runs)
    assert train_jobs(configs, store) == [] and track_jobs(runs, p) == [] and final_jobs(runs, p) == []
    for run in runs:
        table = (run.path / "complexity.csv").read_text().splitlines()
        assert len(table) - 1 == len([e for e in run.checkpoints() if e >= p.min_epoch]) * len(p.track_eps)
        assert (run.path / "rate_distortion.csv").is_file()
