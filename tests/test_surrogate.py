"""Algorithm 1's surrogate (grok_lib.complexity.surrogate) against scikit-optimize's own GP and Space."""

import warnings

import numpy as np
import pytest
from skopt import Optimizer
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.kernels import RBF

from grok_lib.complexity.search import BayesConfig, _space, _surrogate
from grok_lib.complexity.surrogate import ArraySpace, FastGP, matern_lml


def sizes_like(x: np.ndarray) -> np.ndarray:
    """Objective values shaped like a search's: a smooth size surface plus penalised infeasible points."""
    y = 1e5 + 3e4 * np.sin(5 * x[:, 0]) + 1e4 * x[:, 1] ** 2
    y[::5] = 9.1e5
    return y


def fitted_pair(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 2))
    y = sizes_like(x)
    fast = _surrogate(BayesConfig(), seed=0)
    stock = GaussianProcessRegressor(**fast.get_params(deep=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's convergence notes on few points
        fast.fit(x, y)
        stock.fit(x, y)
    return fast, stock, rng


def test_the_lean_likelihood_equals_sklearns_in_value_and_gradient():
    _, stock, rng = fitted_pair(30)
    for theta in (np.zeros(4), np.array([0.7, -1.5, 0.3, -4.0]), rng.uniform(-3, 3, 4)):
        want, want_grad = stock.log_marginal_likelihood(theta, eval_gradient=True)
        got, got_grad = matern_lml(theta, stock.X_train_, stock.y_train_, stock.alpha)
        assert got == pytest.approx(want, rel=1e-10)
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("n", [5, 13, 40, 62])  # the search's sizes: few random points ... the whole budget
def test_fastgp_fits_and_predicts_as_skopts_gp(n):
    fast, stock, rng = fitted_pair(n, seed=n)
    assert fast.optimizer == "fmin_l_bfgs_b"  # the configured optimizer is restored after fit
    np.testing.assert_allclose(fast.kernel_.k1.theta, stock.kernel_.k1.theta, rtol=1e-5, atol=1e-6)  # c, l1, l2
    assert fast.noise_ == pytest.approx(stock.noise_, rel=1e-4, abs=1e-9)
    candidates = rng.random((500, 2))
    for got, want in zip(fast.predict(candidates, return_std=True), stock.predict(candidates, return_std=True)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    np.testing.assert_allclose(fast.predict(candidates), stock.predict(candidates), rtol=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gp_hedge_gets_one_shared_prediction_per_fit_as_fresh_copies():
    fast, _, rng = fitted_pair(12)
    candidates = rng.random((50, 2))
    first = fast.predict(candidates, return_std=True)
    first[0][:] = 0.0  # a caller writing into its answer changes nothing for the next caller
    again = fast.predict(candidates, return_std=True)
    assert np.all(again[0] != 0.0)
    fast.fit(fast.X_train_, sizes_like(fast.X_train_)[::-1].copy())  # a refit forgets the old prediction
    assert fast._last_prediction is None
    assert not np.allclose(fast.predict(candidates, return_std=True)[0], again[0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_another_kernel_falls_back_to_sklearns_own_likelihood():
    rng = np.random.default_rng(1)
    x, y = rng.random((15, 2)), rng.random(15)
    fast, stock = FastGP(kernel=RBF(1.0), normalize_y=True), GaussianProcessRegressor(kernel=RBF(1.0), normalize_y=True)
    fast.fit(x, y)
    stock.fit(x, y)
    np.testing.assert_array_equal(fast.kernel_.theta, stock.kernel_.theta)


def test_array_space_draws_and_transforms_the_same_candidates_as_skopt():
    stock, fast = Optimizer(_space(), random_state=4).space, ArraySpace(Optimizer(_space(), random_state=4).space.dimensions)
    a, b = np.random.RandomState(7), np.random.RandomState(7)
    for n in (1, 2000):
        want, got = stock.rvs(n, random_state=a), fast.rvs(n, random_state=b)
        assert np.array_equal(np.asarray(want, dtype=float), np.asarray(got, dtype=float))
        np.testing.assert_array_equal(fast.transform(got), stock.transform(want))


def test_random_points_drawn_before_any_tell_are_the_ones_drawn_between_tells():
    """The claim search.py's pipelined first phase rests on: a tell before the model phase does not touch
    skopt's generator, so asking every random point first gives the same points as ask, tell, ask ..."""
    def optimizer():
        return Optimizer(_space(), base_estimator=_surrogate(BayesConfig(), 0), n_initial_points=6,
                         initial_point_generator="random", random_state=0)

    upfront = optimizer()
    first = [upfront.ask() for _ in range(6)]
    interleaved = optimizer()
    second = []
    for i in range(6):
        second.append(interleaved.ask())
        interleaved.tell(second[-1], float(i))
    assert first == second
