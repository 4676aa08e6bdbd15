"""The LMN pipeline's bookkeeping: which checkpoints get Algorithm 1, and in which order."""

import pytest

from grok_lib.errors import GrokError
from grok_lib.paper.lmn_reproduce import coarse_to_fine, settings, complexity_steps, notebook_out_dir, run_configs
from grok_lib.lmn.tasks import LMNRunConfig


def test_coarse_to_fine_visits_every_step_once_and_spans_the_run_early():
    steps = list(range(0, 3700, 100))
    order = coarse_to_fine(steps)
    assert sorted(order) == steps
    assert order[0] == 0 and max(order[:5]) >= 3200  # the first few already reach the end of the run


def test_complexity_checkpoints_are_logged_steps_including_the_last():
    config = LMNRunConfig(task="xor")
    steps = complexity_steps(config, every=2500)
    assert set(steps) <= set(config.logged_steps())
    assert steps[-1] == 20_000 and 10_000 in steps and min(steps) == 10


def test_paper_profile_is_the_paper_scale():
    p = settings("paper")
    assert (p.steps, p.lmn_samples, p.bayes.n_random, p.bayes.n_guided) == (20_000, 256, 10, 50)


def test_cpu_profile_keeps_the_papers_training_and_measures_less():
    cpu, paper = settings("cpu"), settings("paper")
    assert [c.task for c in run_configs(cpu)] == [c.task for c in run_configs(paper)]
    assert (cpu.steps, cpu.log_every) == (paper.steps, paper.log_every)
    assert cpu.lmn_samples < paper.lmn_samples
    assert cpu.bayes.n_random + cpu.bayes.n_guided < paper.bayes.n_random + paper.bayes.n_guided


def test_notebook_runs_live_under_the_run_store_one_folder_per_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("GROK_RUNS", str(tmp_path))
    assert notebook_out_dir("cpu") == tmp_path / "lmn" / "cpu"
    assert notebook_out_dir("cpu") != notebook_out_dir("paper")
    with pytest.raises(GrokError, match="profile"):
        notebook_out_dir("laptop")


def test_an_lmn_table_with_the_old_column_names_reads_back_with_the_tracking_names(tmp_path):
    from grok_lib.paper.lmn_reproduce import complexity_path, load_complexity
    from grok_lib.store import Run

    run = Run(tmp_path, LMNRunConfig(task="xor"))
    complexity_path(run).write_text("step,eps,paper_bytes,symbols_bytes,tau,delta,cg_train_loss,cg_train_acc,"
                                    "cg_test_acc,n_evaluations,seconds\n10,0.1,900,800,0.5,0.01,0.2,0.9,0.8,12,3.0\n")
    table = load_complexity(run)
    assert list(table.columns) == ["step", "eps", "pooled_paper_bytes", "pooled_symbols_bytes", "pooled_tau",
                                   "pooled_delta", "pooled_train_loss", "pooled_train_acc", "pooled_test_acc",
                                   "pooled_n_evaluations", "seconds"]
    assert table.pooled_paper_bytes.tolist() == [900]


def test_an_lmn_checkpoint_row_carries_the_tracking_tables_pooled_columns(tmp_path):
    from grok_lib.complexity.coders import CODERS
    from grok_lib.complexity.search import BayesConfig
    from grok_lib.lmn.tasks import train_lmn_run
    from grok_lib.paper.lmn_figures import COMPLEXITY
    from grok_lib.paper.lmn_reproduce import add_complexity, summarize

    run = train_lmn_run(LMNRunConfig(task="xor", steps=100, lmn_samples=16, log_every=50), tmp_path)
    table = add_complexity(run, [100], 0.1, BayesConfig(n_random=1, n_guided=1, estimator="ET", n_trees=4))
    for coder in CODERS:
        assert {f"pooled_{coder}_bytes", f"pooled_bound_{coder}", f"pooled_description_length_{coder}_bits"} \
            <= set(table.columns)
    assert COMPLEXITY == "pooled_paper_bytes" and table[COMPLEXITY].iloc[0] > 0
    assert {"pooled_train_loss", "pooled_test_acc", "pooled_n_evaluations"} <= set(table.columns)
    assert COMPLEXITY in set(summarize([run]).column)
