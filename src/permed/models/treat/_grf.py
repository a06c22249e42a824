"""Effects and their variances from EconML's generalized random forest, as arrays.

``CausalForestDML.model_final_.predict_and_var(X)`` gives each patient's effects and their
covariance from the forest's little bags (Athey, Tibshirani & Wager 2019). EconML walks the
trees one at a time in Python, and each tree validates its input again (``GRFTree.
predict_moment`` does not pass ``check_input`` on): for one patient and 500 trees that is about
50 ms, almost all of it checks. :func:`predict_and_var` asks every tree's Cython structure for
its leaf estimates and does EconML's arithmetic on the stacked arrays: the same numbers (tests
hold them within 1e-12) in a few milliseconds. ``benchmarks/grf_inference.py`` measures both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import erfc

from permed.models.treat._base import Floats

__all__ = ["predict_and_var"]

# Rows per pass: the trees' leaf estimates of a pass (trees x rows x (p + p^2) values) stay
# within this many values.
_CELLS = 4_000_000


def predict_and_var(final: Any, X: Floats) -> tuple[Floats, Floats]:
    """``final.predict_and_var(X)`` for EconML's ``CausalForestDML.model_final_``: a GRF, or a
    ``MultiOutputGRF`` of them (one per outcome column).

    Returns
    -------
    theta : ndarray of shape (n, outputs, relevant) or (n, relevant)
    cov : ndarray of shape (n, outputs, relevant, relevant) or (n, relevant, relevant)
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if hasattr(final, "slices_"):
        return _grf(final, X)
    theta, cov = zip(*(_grf(forest, X) for forest in final.estimators_), strict=True)
    return np.moveaxis(np.array(theta), 0, 1), np.moveaxis(np.array(cov), 0, 1)


def _grf(forest: Any, X: Floats) -> tuple[Floats, Floats]:
    p, trees = forest.n_outputs_, len(forest.estimators_)
    step = max(1, _CELLS // (trees * (p + p * p)))
    parts = [_rows(forest, X[start:start + step]) for start in range(0, len(X), step)]
    k = forest.n_relevant_outputs_
    theta = np.concatenate([t for t, _ in parts]) if parts else np.empty((0, p))
    cov = np.concatenate([c for _, c in parts]) if parts else np.empty((0, p, p))
    return theta[:, :k], cov[:, :k, :k]


def _rows(forest: Any, X: Floats) -> tuple[Floats, Floats]:
    """EconML's ``BaseGRF._predict_point_and_var(X, point=True, var=True)``, stacked."""
    n, p, trees = len(X), forest.n_outputs_, forest.estimators_
    alpha = np.empty((len(trees), n, p))
    jac = np.empty((len(trees), n, p * p))
    for t, tree in enumerate(trees):
        alpha[t], jac[t] = tree.tree_.predict_precond_and_jac(X)
    jac = jac.reshape(len(trees), n, p, p)
    invjac = np.linalg.pinv(jac.sum(axis=0) / len(trees))
    theta = np.einsum("ijk,ik->ij", invjac, alpha.sum(axis=0) / len(trees))
    # each tree's moment at theta, then the mean and mean square of each little bag's trees
    moments = alpha - np.einsum("tijk,ik->tij", jac, theta)
    slices = forest.slices_
    bags = np.stack([moments[s].mean(axis=0) for s in slices])
    bag_squares = np.stack([np.einsum("tij,tik->ijk", moments[s], moments[s]) / len(s)
                            for s in slices])
    moment = bags.mean(axis=0)
    between = np.einsum("bij,bik->ijk", bags, bags) / len(slices)
    invjac_t = np.transpose(invjac, (0, 2, 1))
    cov = invjac @ (between - np.einsum("ij,ik->ijk", moment, moment)) @ invjac_t
    # EconML's correction: less the mean within-bag variance, with its objective-Bayes
    # debiasing of the diagonal
    correction = invjac @ ((bag_squares.mean(axis=0) - between) / (len(slices[0]) - 1)) @ invjac_t
    var, var_correction = (np.diagonal(c, axis1=1, axis2=2) for c in (cov, correction))
    naive = var - var_correction
    se = np.maximum(var, var_correction) * np.sqrt(2.0 / len(slices))
    z = naive / np.clip(se, 1e-10, np.inf)
    debiased = naive + se * (np.exp(-(z ** 2) / 2) / np.sqrt(2.0 * np.pi)) / (
        0.5 * erfc(-z / np.sqrt(2.0)))
    cov = cov - correction
    cov[:, np.arange(p), np.arange(p)] = debiased
    return theta, cov
