"""Reference algorithms, each a predictor with the model's signature.

`get_baseline(name, **params)` returns `predict(xs (B, n, d), ys (B, n)) -> preds (B, n)` where
`preds[:, i]` uses only the pairs `0..i-1` and the query `xs[:, i]`. Everything is batched over
prompts and all prefix lengths at once (no Python loop over either), float32 with
`Precision.HIGHEST` wherever a matmul appears (accelerators would otherwise use TF32/bf16).

| name       | params                        | prediction at position i                           |
| ---------- | ----------------------------- | -------------------------------------------------- |
| zero       |                               | 0                                                  |
| averaging  |                               | x_i · b_i / i                                      |
| ols        |                               | x_i · X_i⁺ y_i (min-norm, any rank)                |
| ridge      | lam                           | x_i · (S_i + λI)⁻¹ b_i  (lam=0 is ols)             |
| gd         | eta (scalar or (n,)), steps   | `steps` of GD from w = 0; one step is η b_i        |
| knn        | k                             | mean y of the k nearest context x (ties: earliest) |
| lasso      | alpha, iters                  | FISTA on ½Σ(w·x_j − y_j)² + α‖w‖₁                  |
| dmmse      | pool (M, d), noise_std        | posterior mean of w·x_i over the pool              |

with `S_i = Σ_{j<i} x_j x_jᵀ`, `b_i = Σ_{j<i} y_j x_j`. The linear ones also give their per-prefix
weights via `get_weights(name, **params)` (or the solvers `ols_weights`, `ridge_weights`,
`gd_weights`, `lasso_weights` directly), `ws (B, n, d)` with `ws[:, i]` fitted on pairs 0..i-1.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from icl_regression.baselines.solvers import (
    einsum,
    exclusive_cumsum,
    gd_weights,
    lasso_weights,
    ols_weights,
    ridge_weights,
)

Predictor = Callable[[jax.Array, jax.Array], jax.Array]

# dmmse needs the label-noise σ of its likelihood. For a noise-free task the posterior is a
# point mass on the pool members that fit the prefix exactly, and any small σ gives the same
# answer as soon as one member fits; 0.1 keeps the softmax smooth in float32 before that.
DEFAULT_DMMSE_NOISE_STD = 0.1


def predict_with_weights(ws: jax.Array, xs: jax.Array) -> jax.Array:
    """preds[:, i] = ws[:, i] · xs[:, i]: (B, n, d), (B, n, d) -> (B, n)."""
    return einsum("bnd,bnd->bn", ws, xs)


@jax.jit
def averaging_weights(xs: jax.Array, ys: jax.Array) -> jax.Array:
    """b_i / i (0 for the empty prefix): (B, n, d)."""
    b = exclusive_cumsum(xs * ys[..., None])  # (B, n, d)
    count = jnp.arange(xs.shape[1], dtype=xs.dtype)[None, :, None]  # (1, n, 1)
    return b / jnp.maximum(count, 1.0)


@jax.jit
def zero_weights(xs: jax.Array, ys: jax.Array) -> jax.Array:
    return jnp.zeros_like(xs)


@partial(jax.jit, static_argnames="k")
def knn_predict(xs: jax.Array, ys: jax.Array, k: int = 3) -> jax.Array:
    """Mean label of the k nearest earlier points (all of them while i < k; 0 at i = 0).

    Equal distances are broken deterministically in favour of the earliest context point
    (`lax.top_k` returns the lower index first among equal values).
    """
    n = xs.shape[1]
    coords = jnp.transpose(xs, (2, 0, 1))  # (d, B, n)
    # Exact differences (no ‖a‖² + ‖b‖² − 2a·b cancellation), one coordinate at a time so
    # the (B, n, n, d) differences are never materialised.
    dist = jnp.zeros((xs.shape[0], n, n), xs.dtype)  # (B, query i, context j)
    for coord in coords:
        dist = dist + (coord[:, :, None] - coord[:, None, :]) ** 2
    earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # (i, j): j < i
    neg_dist, idx = jax.lax.top_k(jnp.where(earlier, -dist, -jnp.inf), min(k, n))  # (B, n, k)
    valid = jnp.isfinite(neg_dist)
    labels = jnp.take_along_axis(ys[:, None, :], idx, axis=-1)  # (B, n, k)
    total = jnp.sum(jnp.where(valid, labels, 0.0), axis=-1)
    return total / jnp.maximum(jnp.sum(valid, axis=-1), 1)  # (B, n)


@partial(jax.jit, static_argnames="chunk")
def dmmse_predict(xs: jax.Array, ys: jax.Array, pool: jax.Array,
                  noise_std: float = DEFAULT_DMMSE_NOISE_STD, chunk: int = 64) -> jax.Array:
    """Posterior mean of w·x_i under a uniform prior over the pool (M, d) and Gaussian noise σ.

    log p(m | prefix i) = −Σ_{j<i} (y_j − w_m·x_j)² / (2σ²) + const; the softmax over the pool
    is accumulated chunk by chunk (running max), so memory is B·n·chunk, not B·n·M.
    """
    pool = jnp.asarray(pool, xs.dtype)
    n_pool = pool.shape[0]
    pad = -n_pool % chunk
    chunks = jnp.pad(pool, ((0, pad), (0, 0))).reshape(-1, chunk, pool.shape[1])  # (C, c, d)
    real = (jnp.arange(n_pool + pad) < n_pool).reshape(-1, chunk)  # (C, c)
    inv_two_var = 0.5 / jnp.asarray(noise_std, xs.dtype) ** 2

    def accumulate(carry, chunk_in):
        top, norm, weighted = carry  # (B, n) each
        members, is_real = chunk_in
        proj = einsum("bnd,md->bnm", xs, members)  # (B, n, c): w_m · x_j
        sq = (ys[..., None] - proj) ** 2
        log_lik = -exclusive_cumsum(sq) * inv_two_var  # (B, n, c): pairs j < i
        log_lik = jnp.where(is_real, log_lik, -jnp.inf)
        new_top = jnp.maximum(top, jnp.max(log_lik, axis=-1))
        rescale = jnp.exp(top - new_top)
        probs = jnp.exp(log_lik - new_top[..., None])  # (B, n, c)
        return (new_top, norm * rescale + probs.sum(-1),
                weighted * rescale + jnp.sum(probs * proj, axis=-1)), None

    init = (jnp.full(ys.shape, -jnp.inf, xs.dtype), jnp.zeros_like(ys), jnp.zeros_like(ys))
    (_, norm, weighted), _ = jax.lax.scan(accumulate, init, (chunks, real))
    return weighted / norm  # (B, n)


@partial(jax.jit, static_argnames="steps")
def _gd_position_errors(xs, ys, eta, steps):
    preds = predict_with_weights(gd_weights(xs, ys, eta, steps), xs)
    return jnp.nan_to_num(jnp.mean((preds - ys) ** 2, axis=0), nan=jnp.inf)  # (n,)


@jax.jit
def _one_step_eta(xs, ys):
    u = einsum("bnd,bnd->bn", exclusive_cumsum(xs * ys[..., None]), xs)  # (B, n): x_i · b_i
    num, den = jnp.sum(ys * u, axis=0), jnp.sum(u * u, axis=0)
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)  # (n,)


def tune_gd_eta(xs: jax.Array, ys: jax.Array, steps: int = 1,
                grid: np.ndarray | None = None) -> np.ndarray:
    """Per-position step size minimising the mean squared error on held-out prompts: (n,).

    One step: the prediction η·(x_i · b_i) is linear in η, so the minimiser is closed form,
    η_i = Σ y_i u_i / Σ u_i² with u_i = x_i · b_i (exact for the given prompts). More steps: a
    log-spaced grid (default 10⁻³…10⁰, 61 values), the best value per position. Position 0
    has no context; its η is reported as 0.
    """
    if steps == 1:
        return np.asarray(_one_step_eta(xs, ys))
    grid = np.logspace(-3, 0, 61) if grid is None else np.asarray(grid)
    errors = np.stack([np.asarray(_gd_position_errors(xs, ys, float(e), steps)) for e in grid])
    eta = grid[np.argmin(errors, axis=0)]  # (n,)
    eta[0] = 0.0
    return eta


_predict_jit = jax.jit(predict_with_weights)
_WEIGHTS = {
    "zero": zero_weights,
    "averaging": averaging_weights,
    "ols": ols_weights,
    "ridge": ridge_weights,
    "gd": gd_weights,
    "lasso": lasso_weights,
}
_PREDICTORS = {"knn": knn_predict, "dmmse": dmmse_predict}
BASELINES = tuple(_WEIGHTS) + tuple(_PREDICTORS)
_REQUIRED = {"ridge": ("lam",), "gd": ("eta",), "lasso": ("alpha",), "dmmse": ("pool",)}


def _bind(name: str, fn: Callable, params: dict) -> Callable:
    if name not in BASELINES:
        raise ValueError(f"baseline {name!r} is unknown; allowed: {', '.join(BASELINES)}")
    allowed = list(inspect.signature(fn).parameters)[2:]
    for key in params:
        if key not in allowed:
            raise ValueError(f"baseline {name!r}: parameter {key!r} is unknown; "
                             f"allowed: {', '.join(allowed) or 'none'}")
    missing = [key for key in _REQUIRED.get(name, ()) if key not in params]
    if missing:
        raise ValueError(f"baseline {name!r}: parameter {missing[0]!r} is required")
    if name == "ridge" and float(params["lam"]) == 0.0:  # the λ → 0 limit is min-norm ols
        return ols_weights
    # fn is jitted with numeric params traced (one compilation serves every λ, η, pool).
    return partial(fn, **params)


def get_weights(name: str, **params) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Per-prefix weights `(xs, ys) -> ws (B, n, d)` of a weight-based baseline."""
    if name in _PREDICTORS:
        raise ValueError(f"baseline {name!r} has no weight vector; "
                         f"weight-based baselines: {', '.join(_WEIGHTS)}")
    return _bind(name, _WEIGHTS.get(name, zero_weights), params)


def get_baseline(name: str, **params) -> Predictor:
    """A predictor `(xs (B, n, d), ys (B, n)) -> preds (B, n)` by name (see the module table)."""
    if name in _PREDICTORS:
        return _bind(name, _PREDICTORS[name], params)
    weights = get_weights(name, **params)
    return lambda xs, ys: _predict_jit(weights(xs, ys), xs)
