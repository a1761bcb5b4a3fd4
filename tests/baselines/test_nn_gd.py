"""nn_gd against a float64 NumPy two-layer net trained by the same Adam from the same init."""

import jax
import numpy as np

from icl_regression import baselines
from icl_regression.baselines.nn_gd import ADAM_B1, ADAM_B2, ADAM_EPS, nn_init


def numpy_fit_predict(u, a, x, y, query, steps, lr):
    """One net on one prefix: loss mean_j (a·ReLU(U x_j) − y_j)², hand-written gradients."""
    params = [u.copy(), a.copy()]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        pre = x @ params[0].T  # (k, H)
        hid = np.maximum(pre, 0)
        resid = hid @ params[1] - y  # (k,)
        g_out = 2 * resid / len(y)
        grads = [((g_out[:, None] * params[1]) * (pre > 0)).T @ x, hid.T @ g_out]
        for p, mo, ve, g in zip(params, m, v, grads, strict=True):
            mo[...] = ADAM_B1 * mo + (1 - ADAM_B1) * g
            ve[...] = ADAM_B2 * ve + (1 - ADAM_B2) * g * g
            p -= lr * (mo / (1 - ADAM_B1**t)) / (np.sqrt(ve / (1 - ADAM_B2**t)) + ADAM_EPS)
    return np.maximum(query @ params[0].T, 0) @ params[1]


def test_matches_numpy_adam_on_every_prefix():
    rng = np.random.default_rng(0)
    batch, n, d, hidden, steps, lr = 2, 8, 4, 6, 40, 0.02  # k = 1..7: k < d included
    xs = rng.standard_normal((batch, n, d)).astype(np.float32)
    ys = np.maximum(xs[..., 0], 0).astype(np.float32)
    got = np.asarray(baselines.get_baseline("nn_gd", hidden=hidden, steps=steps, lr=lr, seed=3,
                                            chunk=1)(xs, ys))
    u, a = (np.asarray(p, np.float64) for p in nn_init(jax.random.key(3), batch, n, hidden, d))
    for b in range(batch):
        assert got[b, 0] == 0
        for i in range(1, n):
            ref = numpy_fit_predict(u[b, i], a[b, i], xs[b, :i].astype(np.float64),
                                    ys[b, :i].astype(np.float64), xs[b, i].astype(np.float64),
                                    steps, lr)
            np.testing.assert_allclose(got[b, i], ref, rtol=2e-3, atol=2e-4)

