"""logistic: L2-regularised logistic regression on every prefix, by batched Newton steps."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from icl_regression.baselines.registry import register_baseline
from icl_regression.baselines.solvers import einsum, over_chunks


def logistic_weights(xs: jax.Array, ys: jax.Array, lam: float = 1.0, iters: int = 25):
    """Per prefix i, w_i = argmin Σ_{j<i} log(1 + exp(−y_j w·x_j)) + λ/2 ‖w‖² (labels ±1, no
    intercept; sklearn's LogisticRegression(C=1/λ, fit_intercept=False)): (B, n, d).

    Newton from w = 0 with the exact Hessian Σ p_j(1 − p_j) x_j x_jᵀ + λI, positive definite
    for λ > 0; the objective is strongly convex, so a fixed number of steps converges
    (quadratically once close) for every prefix at once.
    """
    n, d = xs.shape[1], xs.shape[2]
    before = (jnp.arange(n)[None, :] < jnp.arange(n)[:, None]).astype(xs.dtype)  # (i, j): j < i
    eye = jnp.eye(d, dtype=xs.dtype)

    def newton(w, _):
        margin = ys[:, None, :] * einsum("bid,bjd->bij", w, xs)  # (B, i, j): y_j w_i·x_j
        p = jax.nn.sigmoid(-margin) * before  # (B, i, j): σ(−m), masked to the prefix
        grad = lam * w - einsum("bij,bj,bjd->bid", p, ys, xs)  # (B, i, d)
        curv = jax.nn.sigmoid(margin) * p  # (B, i, j): p(1 − p)
        hess = einsum("bij,bjd,bje->bide", curv, xs, xs) + lam * eye  # (B, i, d, d)
        step = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(hess), True), grad[..., None])
        return w - step[..., 0], None

    w, _ = jax.lax.scan(newton, jnp.zeros_like(xs), None, length=iters)
    return w  # (B, n, d)


@register_baseline("logistic", predictors=lambda ctx: {"logistic(lam=1)": {"lam": 1.0}})
@partial(jax.jit, static_argnames=("iters", "chunk"))
def logistic_predict(xs: jax.Array, ys: jax.Array, lam: float = 1.0, iters: int = 25,
                     chunk: int = 256) -> jax.Array:
    """E[y | x_i] = 2σ(w_i·x_i) − 1 = tanh(w_i·x_i / 2) of the fitted model (the posterior-mean
    answer for squared error; its sign is the class): (B, n). 0 with no context."""
    w = over_chunks(partial(logistic_weights, lam=lam, iters=iters), xs, ys,
                    chunk=chunk)  # (B, n, d)
    return jnp.tanh(0.5 * einsum("bnd,bnd->bn", w, xs))  # (B, n)
