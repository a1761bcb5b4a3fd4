"""mixture_bayes against a float64 NumPy enumeration over σ with the k×k marginal covariance."""

import numpy as np
import pytest

from icl_regression import baselines


def reference(xs, ys, noise_stds, w_scale):
    """Posterior mean by Bayes' rule: y_prefix ~ N(0, α X Xᵀ + σ² I) per σ, α = τ²/d."""
    batch, n, d = xs.shape
    alpha = w_scale**2 / d
    out = np.zeros((batch, n))
    for b in range(batch):
        for i in range(1, n):
            x, y, q = xs[b, :i], ys[b, :i], xs[b, i]
            logp, means = [], []
            for s in noise_stds:
                cov = alpha * x @ x.T + s**2 * np.eye(i)
                sol = np.linalg.solve(cov, y)
                logp.append(-0.5 * (y @ sol + np.linalg.slogdet(cov)[1]))
                means.append(alpha * q @ x.T @ sol)
            post = np.exp(np.array(logp) - max(logp))
            out[b, i] = post @ np.array(means) / post.sum()
    return out


@pytest.mark.parametrize("noise_stds, w_scale", [((0.1, 0.25, 0.5, 1.0), 1.0), ((0.05, 2.0), 1.5)])
def test_matches_float64_enumeration_on_every_prefix(noise_stds, w_scale):
    rng = np.random.default_rng(0)
    batch, n, d = 6, 14, 5  # k = 0..13: k < d, = d, > d
    xs = rng.standard_normal((batch, n, d))
    ws = rng.standard_normal((batch, d)) * w_scale / np.sqrt(d)
    sigma = rng.choice(noise_stds, batch)[:, None]
    ys = np.einsum("bnd,bd->bn", xs, ws) + sigma * rng.standard_normal((batch, n))
    xs32, ys32 = xs.astype(np.float32), ys.astype(np.float32)
    got = np.asarray(baselines.get_baseline("mixture_bayes", noise_stds=noise_stds,
                                            w_scale=w_scale)(xs32, ys32))
    ref = reference(xs32.astype(np.float64), ys32.astype(np.float64), noise_stds, w_scale)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=2e-5)


def test_one_noise_level_is_that_sigmas_bayes_ridge():
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((4, 9, 3)).astype(np.float32)
    ys = rng.standard_normal((4, 9)).astype(np.float32)
    got = baselines.get_baseline("mixture_bayes", noise_stds=(0.5,))(xs, ys)
    ridge = baselines.get_baseline("ridge", lam=0.25 * 3)(xs, ys)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ridge), rtol=1e-5, atol=1e-6)
