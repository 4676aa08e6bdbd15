"""The LMN pipeline's bookkeeping: which checkpoints get Algorithm 1, and in which order."""

from grok_lib.lmn_reproduce import PROFILES, coarse_to_fine, complexity_steps
from grok_lib.lmn_tasks import LMNRunConfig


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
    p = PROFILES["paper"]
    assert (p.steps, p.lmn_samples, p.bayes.n_random, p.bayes.n_guided) == (20_000, 256, 10, 50)
