"""Every baseline against an independent float64 NumPy computation, prefix by prefix."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from icl_regression import baselines
from icl_regression.baselines import solvers
from icl_regression.config import TaskConfig
from icl_regression.data import tasks

B, N, D = 12, 14, 5  # prefixes k = 0..13 cover k < d, k = d and k > d


def make_prompts(seed=0, noise=0.5, scale_coord=None, subspace=None, grid_values=False):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((B, N, D))
    if grid_values:  # coordinates in {-1, 0, 1}: many exactly tied distances
        xs = rng.integers(-1, 2, (B, N, D)).astype(float)
    if scale_coord is not None:
        xs[..., scale_coord] *= 1e-2
    if subspace is not None:  # x confined to a random `subspace`-dimensional subspace
        basis = np.linalg.qr(rng.standard_normal((D, subspace)))[0]  # (D, s)
        xs = xs[..., :subspace] @ basis.T
    ws = rng.standard_normal((B, D)) / np.sqrt(D)
    ys = np.einsum("bnd,bd->bn", xs, ws) + noise * rng.standard_normal((B, N))
    return xs.astype(np.float32), ys.astype(np.float32)


def gaussian_task_prompts(batch, noise=0.0, seed=5):
    """Prompts of the default task family drawn in NumPy (x ~ N(0, I), w ~ N(0, I/d))."""
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((batch, N, D))
    ws = rng.standard_normal((batch, D)) / np.sqrt(D)
    ys = np.einsum("bnd,bd->bn", xs, ws) + noise * rng.standard_normal((batch, N))
    return xs.astype(np.float32), ys.astype(np.float32)


def per_prefix(xs, ys, fit):
    """Reference weights (B, N, D): fit(X (k, d) float64, y (k,)) for every prompt and prefix."""
    out = np.zeros(xs.shape)
    for b in range(xs.shape[0]):
        for k in range(1, xs.shape[1]):
            out[b, k] = fit(xs[b, :k].astype(np.float64), ys[b, :k].astype(np.float64))
    return out


def lstsq(x, y):
    return np.linalg.lstsq(x, y, rcond=None)[0]


def rel_err(got, ref):
    """Max over prompts and prefixes of ‖got − ref‖ / ‖ref‖ (prefixes with ref = 0 skipped)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref)
    norm = np.linalg.norm(ref, axis=-1)
    mask = norm > 0
    return float(np.max(np.linalg.norm(got - ref, axis=-1)[mask] / norm[mask]))


@pytest.mark.parametrize("case", [{}, {"scale_coord": 2}, {"noise": 0.0}])
def test_ols_matches_lstsq_every_prefix(case):
    xs, ys = make_prompts(**case)
    ref = per_prefix(xs, ys, lstsq)
    assert rel_err(solvers.ols_weights(xs, ys), ref) < 1e-3
    preds = baselines.get_baseline("ols")(xs, ys)
    assert np.allclose(preds, np.einsum("bnd,bnd->bn", ref, xs), rtol=1e-3, atol=1e-4)


def test_float32_normal_equations_fail_the_same_check():
    """The k = d prefixes are hard: solving XᵀX w = Xᵀy in float32 misses the tolerance."""
    xs, ys = make_prompts(scale_coord=2)
    k = D
    gram = np.einsum("bki,bkj->bij", xs[:, :k], xs[:, :k])  # float32
    normal = np.linalg.solve(gram, np.einsum("bki,bk->bi", xs[:, :k], ys[:, :k])[..., None])
    ref = per_prefix(xs, ys, lstsq)[:, k]
    assert rel_err(normal[..., 0], ref) > 1e-3
    assert rel_err(solvers.ols_weights(xs, ys)[:, k], ref) < 1e-3


def test_ols_rank_deficient_is_pseudo_inverse():
    xs, ys = make_prompts(subspace=3)  # rank 3 < d = 5 for every prefix
    xs[:, 7] = xs[:, 2]  # and a repeated point
    ref = per_prefix(xs, ys, lambda x, y: np.linalg.pinv(x, rcond=1e-6) @ y)
    assert rel_err(solvers.ols_weights(xs, ys), ref) < 1e-3


def test_ridge_closed_form_and_small_lambda_limit():
    xs, ys = make_prompts()
    for lam in (0.1, 2.0):
        ref = per_prefix(xs, ys, lambda x, y, lam=lam: np.linalg.solve(
            x.T @ x + lam * np.eye(D), x.T @ y))
        assert rel_err(baselines.get_weights("ridge", lam=lam)(xs, ys), ref) < 1e-4
    tiny = np.asarray(solvers.ridge_weights(xs, ys, 1e-8))
    ref = per_prefix(xs, ys, lstsq)
    assert rel_err(tiny[:, D:], ref[:, D:]) < 1e-3  # k ≥ d: ridge → ols
    assert rel_err(baselines.get_weights("ridge", lam=0.0)(xs, ys), ref) < 1e-3


def test_gd_one_step_multi_step_and_limit():
    xs, ys = make_prompts()
    ref_one = per_prefix(xs, ys, lambda x, y: 0.1 * x.T @ y)
    assert rel_err(solvers.gd_weights(xs, ys, 0.1, 1), ref_one) < 1e-5
    eta = np.linspace(0.01, 0.05, N).astype(np.float32)  # per-position step sizes

    def three_steps(x, y):
        w = np.zeros(D)
        for _ in range(3):
            w = w - eta[len(x)] * x.T @ (x @ w - y)
        return w

    assert rel_err(solvers.gd_weights(xs, ys, eta, 3), per_prefix(xs, ys, three_steps)) < 1e-4
    lam_max = max(np.linalg.eigvalsh(x.T.astype(np.float64) @ x)[-1] for x in xs)
    many = solvers.gd_weights(xs, ys, float(1.0 / lam_max), 4000)
    ref = per_prefix(xs, ys, lstsq)
    assert rel_err(np.asarray(many)[:, 2 * D:], ref[:, 2 * D:]) < 1e-3


def test_averaging():
    xs, ys = make_prompts()
    ref = per_prefix(xs, ys, lambda x, y: x.T @ y / len(y))
    assert rel_err(baselines.get_weights("averaging")(xs, ys), ref) < 1e-5


@pytest.mark.parametrize("k", [1, 3])
def test_knn_with_ties_prefers_earliest(k):
    xs, ys = make_prompts(grid_values=True)
    xs[:, 5] = xs[:, 1]  # exact duplicates too
    ref = np.zeros((B, N))
    for b in range(B):
        for i in range(1, N):
            dist = np.sum((xs[b, :i].astype(np.float64) - xs[b, i]) ** 2, axis=-1)
            ref[b, i] = ys[b, np.argsort(dist, kind="stable")[:k]].mean()  # stable: earliest
    assert np.allclose(baselines.get_baseline("knn", k=k)(xs, ys), ref, atol=1e-6)


def test_lasso_matches_coordinate_descent():
    xs, ys = make_prompts(seed=3, noise=0.1)
    alpha = 0.3

    # Reference: cyclic coordinate descent on ½‖Xw − y‖² + α‖w‖₁ in float64, run to
    # convergence for all (prompt, prefix) problems at once (prefix rows beyond k zeroed).
    keep = np.arange(N)[None, :, None] < np.arange(N)[:, None, None]  # (k, j, 1): j < k
    x = np.where(keep[None], xs[:, None].astype(np.float64), 0.0)  # (B, k, j, D)
    y = np.where(keep[None, ..., 0], ys[:, None].astype(np.float64), 0.0)  # (B, k, j)
    col_sq = np.sum(x * x, axis=2)  # (B, k, D)
    ref = np.zeros((B, N, D))
    for _ in range(3000):
        for j in range(D):
            resid = y - np.einsum("bkjd,bkd->bkj", x, ref) + x[..., j] * ref[..., j, None]
            rho = np.einsum("bkj,bkj->bk", x[..., j], resid)
            shrunk = np.sign(rho) * np.maximum(np.abs(rho) - alpha, 0.0)
            safe = np.maximum(col_sq[..., j], 1e-300)
            ref[..., j] = np.where(col_sq[..., j] > 0, shrunk / safe, 0.0)
    got = np.asarray(baselines.get_weights("lasso", alpha=alpha, iters=3000)(xs, ys))
    assert np.max(np.abs(got - ref)) < 1e-4


def test_dmmse_matches_brute_force_bayes():
    xs, ys = make_prompts(noise=0.3)
    pool = np.random.default_rng(1).standard_normal((50, D)).astype(np.float32) / np.sqrt(D)
    sigma = 0.3
    ref = np.zeros((B, N))
    for b in range(B):
        for i in range(N):
            x, y = xs[b, :i].astype(np.float64), ys[b, :i].astype(np.float64)
            log_lik = -np.sum((y[None] - pool.astype(np.float64) @ x.T) ** 2, -1) / (2 * sigma**2)
            post = np.exp(log_lik - log_lik.max())
            ref[b, i] = (post / post.sum()) @ (pool @ xs[b, i].astype(np.float64))
    got = baselines.dmmse_predict(xs, ys, pool, noise_std=sigma, chunk=16)  # 4 chunks, padded
    assert np.allclose(got, ref, atol=1e-4)


def test_bayes_ridge_beats_other_lambdas_on_noisy_tasks():
    task = TaskConfig(d=D, n_points=N, noise_std=0.5)  # w ~ N(0, I/d): the project's convention
    xs, ys = gaussian_task_prompts(4000, noise=0.5)
    lam_star = tasks.bayes_ridge_lambda(task)

    def errors(lam):  # (B,): mean squared error over positions 1..N-1
        preds = baselines.get_baseline("ridge", lam=lam)(xs, ys)
        return np.mean((np.asarray(preds) - np.asarray(ys))[:, 1:] ** 2, axis=1)

    best = errors(lam_star)
    for lam in (lam_star / 8, lam_star / 2, 2 * lam_star, 8 * lam_star):
        diff = errors(lam) - best  # paired per prompt
        assert diff.mean() > 3 * diff.std() / np.sqrt(len(diff)), lam


def test_tuned_gd_eta_is_the_per_position_minimiser():
    xs, ys = gaussian_task_prompts(500)
    eta = baselines.tune_gd_eta(xs, ys)
    assert eta.shape == (N,) and eta[0] == 0.0
    x64, y64 = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    grid = np.linspace(0.0, 1.0, 4001)
    for i in (1, D, N - 1):
        u = np.einsum("bd,bkd,bk->b", x64[:, i], x64[:, :i], y64[:, :i])
        err = ((y64[:, i, None] - grid[None] * u[:, None]) ** 2).mean(0)
        assert abs(eta[i] - grid[np.argmin(err)]) < 1e-3
    grid_eta = baselines.tune_gd_eta(xs, ys, steps=2, grid=np.array([0.01, 0.05, 0.1]))
    assert grid_eta.shape == (N,) and set(grid_eta[1:]) <= {0.01, 0.05, 0.1}


def test_every_baseline_is_causal():
    """preds[:, i] must not change when pairs i, i+1, ... change (only the query x_i is seen)."""
    xs, ys = make_prompts()
    xs2, ys2 = xs.copy(), ys.copy()
    i = 6
    ys2[:, i:] += 5.0
    xs2[:, i + 1:] *= -3.0
    pool = np.random.default_rng(1).standard_normal((20, D)).astype(np.float32)
    params = {"ridge": {"lam": 0.5}, "gd": {"eta": 0.05}, "lasso": {"alpha": 0.1, "iters": 50},
              "dmmse": {"pool": pool}, "knn": {"k": 2}, "newton": {"steps": 3},
              "cg": {"steps": 2}, "online_gd": {"eta": 0.05},
              "mixture_bayes": {"noise_stds": (0.5, 1.0)}, "nn_gd": {"hidden": 4, "steps": 5},
              "tree": {"progress": False}, "xgboost": {"n_estimators": 5, "progress": False}}
    for name in baselines.BASELINES:
        predict = baselines.get_baseline(name, **params.get(name, {}))
        a, b = np.asarray(predict(xs, ys)), np.asarray(predict(xs2, ys2))
        assert np.allclose(a[:, :i + 1], b[:, :i + 1], atol=1e-6), name
        if name != "zero":
            assert not np.allclose(a[:, i + 1:], b[:, i + 1:]), name


def test_registry_rejects_bad_names_and_params():
    with pytest.raises(ValueError, match=r"'nope' is unknown; allowed: .*\bzero\b"):
        baselines.get_baseline("nope")
    with pytest.raises(ValueError, match="parameter 'lamda' is unknown; allowed: lam"):
        baselines.get_baseline("ridge", lamda=1.0)
    with pytest.raises(ValueError, match="parameter 'eta' is required"):
        baselines.get_baseline("gd")
    with pytest.raises(ValueError, match="no weight vector"):
        baselines.get_weights("knn", k=3)
    assert np.all(np.asarray(baselines.get_baseline("zero")(jnp.ones((2, 3, 4)),
                                                             jnp.ones((2, 3)))) == 0)
