"""Iterative baselines (newton, gd, cg, online_gd) against float64 NumPy matrix iterations."""

from __future__ import annotations

import numpy as np
import pytest

from icl_regression import baselines
from icl_regression.baselines import iterative

B, N, D = 6, 9, 4  # prefixes k = 0..8: k < d, k = d, k > d


def prompts(seed=0, kappa=1.0):
    """Gaussian prompts; kappa > 1: covariance with eigenvalues from 1 to 1/κ, random basis."""
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((B, N, D))
    if kappa > 1:
        basis = np.linalg.qr(rng.standard_normal((D, D)))[0]
        xs = (xs * np.sqrt(np.geomspace(1.0, 1.0 / kappa, D))) @ basis.T
    ws = rng.standard_normal((B, D)) / np.sqrt(D)
    ys = np.einsum("bnd,bd->bn", xs, ws) + 0.1 * rng.standard_normal((B, N))
    return xs.astype(np.float32), ys.astype(np.float32)


def reference(xs, ys, fit):
    """fit(S (d, d) float64, b (d,), X (k, d), y (k,)) -> w for every prompt and prefix k ≥ 1."""
    out = np.zeros(xs.shape)
    for b in range(xs.shape[0]):
        for k in range(1, xs.shape[1]):
            x, y = xs[b, :k].astype(np.float64), ys[b, :k].astype(np.float64)
            out[b, k] = fit(x.T @ x, x.T @ y, x, y)
    return out


def newton_np(steps):
    def fit(s, b, x, y):
        m = s / np.linalg.norm(s, 2) ** 2
        for _ in range(steps):
            m = 2 * m - m @ s @ m
        return m @ b
    return fit


def gd_np(steps, eta):
    def fit(s, b, x, y):
        w = np.zeros_like(b)
        for _ in range(steps):
            w = w - eta * (s @ w - b)
        return w
    return fit


def cg_np(steps):
    def fit(s, b, x, y):
        w, r = np.zeros_like(b), b.copy()
        p = r.copy()
        for _ in range(steps):
            if r @ r < 1e-28 * (b @ b):
                break
            alpha = (r @ r) / (p @ s @ p)
            w, r_new = w + alpha * p, r - alpha * (s @ p)
            p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
        return w
    return fit


def online_np(eta, passes):
    def fit(s, b, x, y):
        w = np.zeros(x.shape[1])
        for _ in range(passes):
            for xj, yj in zip(x, y, strict=True):
                w = w + eta * (yj - w @ xj) * xj
        return w
    return fit


def ols_np(s, b, x, y):
    return np.linalg.lstsq(x, y, rcond=None)[0]


def rel_err(got, ref, ks=slice(1, None)):
    got, ref = np.asarray(got, np.float64)[:, ks], ref[:, ks]
    return float(np.max(np.linalg.norm(got - ref, axis=-1) / np.linalg.norm(ref, axis=-1)))


@pytest.mark.parametrize("kappa", [1.0, 100.0])
def test_newton_matches_matrix_iteration(kappa):
    xs, ys = prompts(1, kappa)
    every = iterative.newton_iterates(xs, ys, 12)  # (13, B, N, D)
    for t in (0, 1, 3, 6, 12):
        assert rel_err(every[t], reference(xs, ys, newton_np(t))) < 2e-4, t
    single = baselines.get_weights("newton", steps=3)(xs, ys)
    assert np.allclose(single, every[3])


def test_newton_converges_to_min_norm_ols_every_rank():
    xs, ys = prompts(2)
    ref = reference(xs, ys, ols_np)
    got = iterative.newton_iterates(xs, ys, 40)[-1]
    assert rel_err(got, ref, slice(1, D)) < 1e-4  # k < d: min-norm solution of a rank-k S
    assert rel_err(got, ref, slice(D + 1, None)) < 1e-3
    assert rel_err(iterative.newton_iterates(xs, ys, 2)[-1], ref) > 0.05  # not yet converged


@pytest.mark.parametrize("kappa", [1.0, 100.0])
def test_gd_closed_form_matches_steps(kappa):
    xs, ys = prompts(3, kappa)
    eta, steps = 0.02, np.array([1, 2, 7, 50, 400])
    every = iterative.gd_iterates(xs, ys, eta, steps)
    for i, t in enumerate(steps):
        assert rel_err(every[i], reference(xs, ys, gd_np(int(t), eta))) < 2e-4, t
    assert np.allclose(baselines.get_weights("gd", eta=eta, steps=7)(xs, ys), every[2],
                       rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kappa", [1.0, 100.0])
def test_cg_matches_reference_and_is_exact_after_rank_steps(kappa):
    xs, ys = prompts(4, kappa)
    every = iterative.cg_iterates(xs, ys, D + 1)
    for t in (1, 2) if kappa > 1 else (1, 2, 3):  # later κ = 100 steps: float32 drifts
        assert rel_err(every[t], reference(xs, ys, cg_np(t))) < 1e-3, t
    ols = reference(xs, ys, ols_np)
    tol = 1e-3 if kappa == 1 else 5e-3
    assert rel_err(every[D], ols, slice(1, D)) < tol  # rank k < d: exact after k steps
    # k > d: exact after d steps in exact arithmetic; float32 CG on κ(S) ~ 10³ loses
    # orthogonality and needs one more step.
    assert rel_err(every[D + 1], ols, slice(D + 1, None)) < 1e-3
    assert rel_err(every[D - 2], ols, slice(D + 1, None)) > 0.1


def test_online_gd_matches_sequential_updates():
    xs, ys = prompts(5)
    got = iterative.iterate_weights("online_gd", xs, ys, [1, 3], eta=0.1)
    for i, passes in enumerate((1, 3)):
        assert rel_err(got[i], reference(xs, ys, online_np(0.1, passes))) < 1e-4
    single = baselines.get_weights("online_gd", eta=0.1)(xs, ys)
    assert np.allclose(single, got[0], atol=1e-6)


def test_tuned_eta_is_best_on_its_prompts_and_predictions_align():
    xs, ys = prompts(6)
    its = [1, 4, 16]
    eta = iterative.tune_iteration_eta("gd", xs, ys, its)
    assert eta.shape == (3, N) and np.all(eta[:, 0] == 0) and np.all(eta[:, 1:] > 0)
    preds = np.asarray(iterative.iterate_predictions("gd", xs, ys, its, eta))  # (3, B, N)
    ws = np.asarray(iterative.iterate_weights("gd", xs, ys, its, eta))
    assert np.allclose(preds, np.einsum("tbnd,bnd->tbn", ws, xs), atol=1e-5)
    tuned = np.mean((preds - ys) ** 2, axis=1)[:, 1:]
    grid = iterative.ETA_GRID
    interior = (eta > grid[0]) & (eta < grid[-1])  # (T, N): a grid neighbour on either side
    assert interior[:, 1:].mean() > 0.5
    for neighbour in (eta / (grid[1] / grid[0]), eta * (grid[1] / grid[0])):
        other = np.asarray(iterative.iterate_predictions("gd", xs, ys, its, neighbour))
        worse = tuned <= np.mean((other - ys) ** 2, axis=1)[:, 1:] * (1 + 1e-5)
        assert np.all(worse | ~interior[:, 1:])


def test_normalised_gd_steps_by_the_spectral_norm_and_stays_stable():
    xs, ys = prompts(7, kappa=100.0)

    def fit(s, b, x, y):
        return gd_np(300, 1.9 / np.linalg.norm(s, 2))(s, b, x, y)

    got = iterative.gd_iterates(xs, ys, 1.9, np.array([300]), normalised=True)[0]
    assert rel_err(got, reference(xs, ys, fit)) < 2e-4
    assert np.all(np.isfinite(iterative.gd_iterates(xs, ys, 1.95, np.array([4096]), True)))
