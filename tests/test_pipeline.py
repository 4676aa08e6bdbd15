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
    assert len(train_jobs(configs, store)[0]) == len(configs)
    compute(p, store)
    runs = [store.run(c) for c in configs]
    assert all(r.is_complete for r in runs)
    assert train_jobs(configs, store) == ([], {}) and track_jobs(runs, p) == [] and final_jobs(runs, p) == []
    for run in runs:
        table = (run.path / "complexity.csv").read_text().splitlines()
        assert len(table) - 1 == len([e for e in run.checkpoints() if e >= p.min_epoch]) * len(p.track_eps)
        assert (run.path / "rate_distortion.csv").is_file()


def test_a_rate_distortion_table_with_the_old_column_names_is_reused_and_read_with_the_new_ones(tmp_path):
    import pandas as pd

    from grok_lib.complexity.tracking import LEGACY_COLUMNS
    import json

    from grok_lib.paper.pipeline import RATE_DISTORTION_FILE, final_rate_distortion
    from grok_lib.paper.profiles import tracking_settings

    p = get_profile("ci")
    settings = tracking_settings(p, final=True)
    budget = settings.how.budget
    # the flat format stored before `how`, allocation, split, refine and reallocate existed
    stamp = json.dumps({"eps": list(settings.eps), "seed": 0, "one_sided": False, "objective": "paper",
                        "algorithm_2": settings.how.algorithm_2, "bound_delta": 0.05, "edge": settings.edge,
                        "bayes": {"n_random": budget.n_random, "n_guided": budget.n_guided,
                                  "probes": [list(q) for q in budget.probes], "estimator": budget.estimator,
                                  "gp_restarts": 0, "n_trees": budget.n_trees, "n_candidates": 2000, "batch": 1}})
    run = RunStore(tmp_path).run(p.configs()[0])
    run.save_config()  # a stored run (opening one writes nothing)
    old = pd.DataFrame(dict(epoch=[40, 40], eps=list(settings.eps), complexity_bytes=[900, 700],
                            pooled_bytes=[800, 600], alg2_bytes=[850, 650], bound=[3.5, 3.0],
                            coarse_train_loss=[0.1, 0.2], naive_bytes=[9000, 9000], settings=[stamp, stamp]))
    (run.path / RATE_DISTORTION_FILE).write_text(old.to_csv(index=False))
    assert final_jobs([run], p) == []  # same settings, every final eps: reused, not remeasured
    final = final_rate_distortion([run], p)
    assert not set(LEGACY_COLUMNS) & set(final.columns)
    assert final[["alg1_paper_bytes", "pooled_paper_bytes", "alg2_paper_bytes", "alg1_bound_paper",
                  "alg1_train_loss"]].iloc[0].tolist() == [900, 800, 850, 3.5, 0.1]


def test_ensemble_training_is_one_job_per_op_and_its_runs_tracking_waits_for_it(tmp_path):
    from grok_lib.training.config import RunConfig

    store = RunStore(tmp_path)
    tiny = dict(p=11, train_frac=0.5, d_model=16, n_heads=2, d_mlp=32, epochs=30)  # ci tracks from epoch 20
    configs = [RunConfig(op=op, regime=regime, seed=seed, **tiny) for op in ("add", "mul")
               for regime in ("none", "ours") for seed in (0, 1)]
    jobs, by_run = train_jobs(configs, store, ensemble=True)
    assert len(jobs) == 2 and len(by_run) == len(configs) and set(by_run.values()) == {j.name for j in jobs}
    p = get_profile("ci")
    runs = [store.run(c) for c in configs]
    tracked = track_jobs(runs, p, by_run)
    assert tracked and all(len(j.after) == 1 and j.after[0] in by_run.values() for j in tracked)
