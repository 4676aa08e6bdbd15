"""One value says how to measure (grok_lib.complexity.measurement): presets, validation once, impossible
combinations named, the same value from the command line to the stored settings and the search."""

import json

import pytest

import grok_lib
from grok_lib.cli import main
from grok_lib.complexity import search
from grok_lib.complexity.measurement import AUTHORS, EDGE, PAPER, PRESETS, TIGHTEST, BayesConfig, Measurement
from grok_lib.complexity.tracking import SETTINGS_FILE, TrackingSettings
from grok_lib.errors import GrokError


def test_the_presets_say_what_they_are():
    assert PAPER == Measurement() and PAPER.budget == BayesConfig()
    assert (PAPER.budget.n_random, PAPER.budget.n_guided, len(PAPER.budget.probes)) == (10, 50, 2)
    assert (AUTHORS.one_sided, AUTHORS.algorithm_2) == (True, "bisection")
    assert (TIGHTEST.objective, TIGHTEST.refine, TIGHTEST.reallocate, TIGHTEST.factor_split) == \
        ("entropy", 4, 2, "balanced")
    assert EDGE.search == "edge" and set(PRESETS) == {"paper", "authors", "tightest", "edge"}
    assert grok_lib.TIGHTEST is TIGHTEST and grok_lib.Measurement is Measurement


@pytest.mark.parametrize("fields, named, other", [
    (dict(search="edge", algorithm=2), "search", "algorithm=2"),
    (dict(search="edge", pooled=True), "pooled", "search='edge'"),
    (dict(algorithm=2, refine=3), "refine", "algorithm=2"),
    (dict(search="edge", reallocate=1), "reallocate", "search='edge'"),
    (dict(algorithm=2, budget=BayesConfig(n_guided=5)), "budget", "algorithm=2"),
    (dict(search="edge", seed=4), "seed", "search='edge'"),
])
def test_an_impossible_combination_names_both_fields(fields, named, other):
    with pytest.raises(GrokError, match=f"^{named}: ") as caught:
        PAPER.but(**fields)
    assert other in str(caught.value)


@pytest.mark.parametrize("fields, named", [(dict(objective="zip"), "objective"), (dict(factor_split="right"), "factor_split"),
                                           (dict(algorithm_2="sweep-edges"), "algorithm_2"), (dict(seed=2**32), "seed"),
                                           (dict(refine=-1), "refine"), (dict(one_sided="yes"), "one_sided"),
                                           (dict(colour="red"), "colour"), (dict(algorithm=True), "algorithm")])
def test_a_bad_field_is_one_error_naming_it(fields, named):
    with pytest.raises(GrokError, match=f"^{named}: "):
        PAPER.but(**fields)


def test_a_measurement_survives_its_stored_form():
    for how in PRESETS.values():
        assert Measurement.from_dict(json.loads(json.dumps(how.as_dict()))) == how
    settings = TrackingSettings(eps=(1.0, 0.5), how=TIGHTEST.but(budget=BayesConfig(n_random=3)), edge=True)
    assert TrackingSettings.from_json(settings.to_json()) == settings
    with pytest.raises(GrokError, match="^how: tracking records every answer"):
        TrackingSettings(how=EDGE)


def test_a_field_given_on_the_command_line_reaches_the_stored_settings_and_the_search(run, monkeypatch):
    seen = []
    real = search.bayesian_complexity

    def spy(problem, eps, config, seed=0, *args, refine=0, reallocate=0, **kwargs):
        seen.append((problem.objective, problem.grainer.split, config.n_random, seed, refine, reallocate))
        return real(problem, eps, config, seed, *args, refine=refine, reallocate=reallocate, **kwargs)

    monkeypatch.setattr(search, "bayesian_complexity", spy)
    assert main(["complexity", str(run.path), "--eps", "1", "--checkpoint", str(run.checkpoints()[-1]),
                 "--preset", "tightest", "--refine", "1", "--reallocate", "0", "--n-random", "2", "--n-guided", "1",
                 "--estimator", "ET", "--search-seed", "7", "--quiet"]) == 0
    assert seen == [("entropy", "balanced", 2, 7, 1, 0)]
    stored = TrackingSettings.from_json((run.path / SETTINGS_FILE).read_text())
    assert stored.how == TIGHTEST.but(refine=1, reallocate=0, seed=7,
                                      budget=BayesConfig(n_random=2, n_guided=1, estimator="ET"))
