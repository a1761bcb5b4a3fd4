"""logistic against scikit-learn's LogisticRegression with the matching C = 1/λ."""

import numpy as np
import pytest

from icl_regression import baselines
from icl_regression.baselines.logistic import logistic_weights

sklearn_lm = pytest.importorskip("sklearn.linear_model")


def prompts(batch=4, n=12, d=5, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((batch, n, d))
    ys = np.where(xs @ rng.standard_normal(d) + 0.3 * rng.standard_normal((batch, n)) > 0, 1, -1)
    return xs.astype(np.float32), ys.astype(np.float32)


@pytest.mark.parametrize("lam", [1.0, 0.1])
def test_weights_match_sklearn_on_every_prefix(lam):
    xs, ys = prompts()
    w = np.asarray(logistic_weights(xs, ys, lam))  # (B, n, d)
    checked = 0
    for b in range(xs.shape[0]):
        for i in range(1, xs.shape[1]):  # k = 1 .. n−1: k < d included
            y = ys[b, :i]
            if len(set(y)) < 2:  # sklearn needs both classes; the prefix is still fitted
                continue
            ref = sklearn_lm.LogisticRegression(C=1 / lam, fit_intercept=False, tol=1e-12,
                                                max_iter=10_000)
            ref.fit(xs[b, :i].astype(np.float64), y)
            np.testing.assert_allclose(w[b, i], ref.coef_[0], rtol=1e-4, atol=1e-5)
            checked += 1
    assert checked > 20
    np.testing.assert_array_equal(w[:, 0], 0.0)


def test_prediction_is_the_class_probability_in_pm1_units():
    xs, ys = prompts(seed=1)
    preds = np.asarray(baselines.get_baseline("logistic", lam=0.5)(xs, ys))
    w = np.asarray(logistic_weights(xs, ys, 0.5))
    np.testing.assert_allclose(preds, 2 / (1 + np.exp(-np.einsum("bnd,bnd->bn", w, xs))) - 1,
                               rtol=1e-4, atol=1e-6)
    assert np.all(preds[:, 0] == 0)
