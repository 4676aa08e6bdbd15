"""Algorithm 1's surrogate: scikit-optimize's Gaussian process, with its kernel fit done in lean numpy.

skopt's GP (`cook_estimator("GP")`) is ConstantKernel x Matern(nu = 2.5, one length scale per
dimension) + WhiteKernel on normalised targets, fit by L-BFGS-B on the log marginal likelihood, which
scikit-learn evaluates through its generic kernel objects at a cost above the search's loss evaluations.
`FastGP` keeps everything of skopt's GP (class, kernel, bounds, starting point, scipy's L-BFGS-B call,
final fit, prediction) and only hands scipy a direct numpy evaluation of the same likelihood and
gradient (`matern_lml`); any other kernel falls back to scikit-learn's objective. It also predicts each
candidate set once per fit (gp_hedge scores the same candidates with EI, PI and LCB). `ArraySpace` is
skopt's Space with the same candidate draws stacked by numpy instead of Python loops.
tests/test_surrogate.py checks values, gradients, fits and predictions against skopt's.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
from scipy.linalg import cho_solve, cholesky
from sklearn.utils import check_random_state
from skopt.learning import GaussianProcessRegressor
from skopt.space import Real, Space

# the hyperparameter names of skopt's GP kernel once its fit has added the WhiteKernel
SKOPT_KERNEL = ("k1__k1__constant_value", "k1__k2__length_scale", "k2__noise_level")
SQRT5 = np.sqrt(5.0)


def pairwise_squares(X: np.ndarray) -> np.ndarray:
    """(n, n, d): (X[i, k] - X[j, k])**2, the part of the Matern kernel that does not depend on theta."""
    return (X[:, None, :] - X[None, :, :]) ** 2


def matern_lml(theta: np.ndarray, X: np.ndarray, y: np.ndarray, alpha: float,
               squares: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """(log marginal likelihood, its gradient in theta) of y under c * Matern52(X; l) + w * I + alpha * I.

    theta = log([c, l_1 .. l_d, w]); y is the normalised target vector; squares: pairwise_squares(X),
    computed once per fit. A kernel matrix that is not positive definite gives (-inf, 0), as scikit-learn's.
    """
    c, scales, w = np.exp(theta[0]), np.exp(theta[1:-1]), np.exp(theta[-1])
    sq = (pairwise_squares(X) if squares is None else squares) / scales ** 2  # D_k of sklearn's Matern gradient
    r5 = SQRT5 * np.sqrt(sq.sum(-1))
    decay = np.exp(-r5)
    matern = (1.0 + r5 + r5 ** 2 / 3.0) * decay
    n = len(X)
    K = c * matern
    K[np.diag_indices(n)] += w + alpha
    try:
        L = cholesky(K, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return -np.inf, np.zeros_like(theta)
    a = cho_solve((L, True), y, check_finite=False)
    lml = -0.5 * y @ a - np.log(np.diag(L)).sum() - n / 2 * np.log(2 * np.pi)
    inner = np.outer(a, a) - cho_solve((L, True), np.eye(n), check_finite=False)
    grad = np.empty_like(theta)
    grad[0] = 0.5 * np.sum(inner * (c * matern))
    shape = c * 5.0 / 3.0 * (1.0 + r5) * decay
    grad[1:-1] = 0.5 * ((inner * shape).reshape(-1) @ sq.reshape(n * n, -1))
    grad[-1] = 0.5 * np.trace(inner) * w
    return float(lml), grad


class FastGP(GaussianProcessRegressor):
    """skopt's GaussianProcessRegressor, with the kernel fit's likelihood evaluated by `matern_lml`."""

    def fit(self, X, y):
        self._last_prediction = None  # predictions of the previous fit are stale
        configured = self.optimizer
        if configured == "fmin_l_bfgs_b":
            self.optimizer = self._lean_lbfgs  # a callable optimizer is public sklearn API
        try:
            return super().fit(X, y)
        finally:
            self.optimizer = configured

    def _lean_lbfgs(self, obj_func, initial_theta, bounds):
        """sklearn's fmin_l_bfgs_b step (same scipy call) on the same objective, computed directly.

        Called by sklearn's fit after it has set X_train_, y_train_ (normalised) and kernel_.
        """
        names = tuple(h.name for h in self.kernel_.hyperparameters)
        y = np.asarray(self.y_train_, dtype=float)
        if names == SKOPT_KERNEL and y.ndim == 1 and np.ndim(self.alpha) == 0 \
                and getattr(self.kernel_.k1.k2, "nu", None) == 2.5:
            X, alpha = np.asarray(self.X_train_, dtype=float), float(self.alpha)
            squares = pairwise_squares(X)

            def objective(theta):
                lml, grad = matern_lml(theta, X, y, alpha, squares)
                return -lml, -grad
        else:
            objective = obj_func
        result = scipy.optimize.minimize(objective, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds)
        return result.x, result.fun

    def predict(self, X, return_std=False, return_cov=False, return_mean_grad=False, return_std_grad=False):
        if not return_std or return_cov or return_mean_grad or return_std_grad:
            return super().predict(X, return_std, return_cov, return_mean_grad, return_std_grad)
        last = getattr(self, "_last_prediction", None)
        if last is None or last[0] is not X:
            last = (X, *self._mean_and_std(X))  # holding X keeps its identity unique
            self._last_prediction = last
        return last[1].copy(), last[2].copy()

    def _mean_and_std(self, X):
        """skopt's predict(X, return_std=True), its 3-operand einsum written as one matrix product and a
        row-wise dot."""
        if not hasattr(self, "X_train_"):
            return super().predict(X, return_std=True)
        K_trans = self.kernel_(X, self.X_train_)
        mean = self.y_train_std_ * K_trans.dot(self.alpha_) + self.y_train_mean_
        var = self.kernel_.diag(X) - np.einsum("ij,ij->i", K_trans @ self.K_inv_, K_trans)
        var[var < 0] = 0.0  # as skopt: numerical noise below zero
        return mean, np.sqrt(var * self.y_train_std_ ** 2)


class ArraySpace(Space):
    """skopt's Space (real dimensions, no constraint: else skopt's own code) with numpy rvs and transform.

    rvs draws each dimension's column exactly as Space.rvs does (same calls, same generator, same order)
    and returns the same list of rows; transform applies each dimension's transform to a column.
    """

    def _plain(self) -> bool:
        return self.constraint is None and all(isinstance(d, Real) for d in self.dimensions)

    def rvs(self, n_samples=1, random_state=None):
        if not self._plain():
            return super().rvs(n_samples, random_state)
        rng = check_random_state(random_state)
        columns = [dim.rvs(n_samples=n_samples, random_state=rng) for dim in self.dimensions]
        return np.column_stack(columns).tolist()

    def transform(self, X):
        if not self._plain():
            return super().transform(X)
        X = np.asarray(X, dtype=float).reshape(len(X), self.n_dims)
        return np.hstack([np.asarray(dim.transform(X[:, j])).reshape(len(X), -1)
                          for j, dim in enumerate(self.dimensions)])
