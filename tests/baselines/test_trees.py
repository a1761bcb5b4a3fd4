"""tree and xgboost against the libraries fitted directly, prefix by prefix; missing extras."""

import sys

import numpy as np
import pytest

from icl_regression import baselines

sk_tree = pytest.importorskip("sklearn.tree")


def prompts(batch=3, n=10, d=4, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((batch, n, d)).astype(np.float32)
    return xs, np.sign(xs[..., 0]) + 0.1 * xs[..., 1]


@pytest.mark.parametrize("depth", [4, None, 1])
def test_tree_is_sklearn_cart_on_each_prefix(depth):
    xs, ys = prompts()
    got = baselines.get_baseline("tree", max_depth=depth, progress=False)(xs, ys)
    for b in range(xs.shape[0]):
        assert got[b, 0] == 0
        for i in range(1, xs.shape[1]):
            ref = sk_tree.DecisionTreeRegressor(max_depth=depth, random_state=0).fit(
                xs[b, :i].astype(np.float64), ys[b, :i].astype(np.float64))
            assert got[b, i] == pytest.approx(ref.predict(xs[b, i:i + 1].astype(np.float64))[0],
                                              rel=1e-6)


def test_xgboost_is_the_library_on_each_prefix():
    xgb = pytest.importorskip("xgboost")
    xs, ys = prompts(batch=2, n=7)
    got = baselines.get_baseline("xgboost", n_estimators=10, progress=False)(xs, ys)
    for b in range(2):
        for i in range(1, 7):
            ref = xgb.XGBRegressor(n_estimators=10, max_depth=4, learning_rate=0.3, n_jobs=1,
                                   random_state=0).fit(xs[b, :i], ys[b, :i])
            assert got[b, i] == pytest.approx(float(ref.predict(xs[b, i:i + 1])[0]), abs=1e-6)


def test_missing_library_is_a_one_line_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "xgboost", None)  # import xgboost now raises ImportError
    xs, ys = prompts()
    with pytest.raises(baselines.MissingExtra, match=r"icl_regression\[trees\]") as err:
        baselines.get_baseline("xgboost")(xs, ys)
    assert "\n" not in str(err.value)
