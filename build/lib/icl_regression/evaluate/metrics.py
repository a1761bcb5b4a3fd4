"""Comparison metrics between a predictor (the model) and the baselines, per position k.

All take plain arrays; `mask (B, n)` marks the scored (prompt, position) entries (all of them,
or one position per prompt for the query settings of `data/shifts.py`).

* error curve: squared error / normaliser, mean and a 95% band (mean ± 1.96 standard errors);
* SPD(A, B) (Akyürek et al. 2022): E (A − B)² / normaliser;
* implicit weights: ŵ fitted by least squares (no intercept) to a predictor's outputs on m
  fresh queries with the context held fixed, its uncentred R² = 1 − Σ‖ŷ − Xŵ‖² / Σ‖ŷ‖²
  (1 for any linear predictor), and ILWD = E‖ŵ − w_B‖² / E‖w‖²;
* sensitivity: ∂ŷ_i/∂x_i (the query only, context fixed) by `jax.jvp`, and its cosine with a
  baseline's (for a linear baseline, its weight vector).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from icl_regression.baselines.solvers import einsum

Predictor = Callable[[jax.Array, jax.Array], jax.Array]


def masked_mean(values: np.ndarray, mask: np.ndarray):
    """Per-position mean over the masked prompts, its standard error and the count: (n,) each."""
    count = mask.sum(axis=0)
    safe = np.maximum(count, 1)
    mean = np.where(mask, values, 0.0).sum(axis=0) / safe
    var = np.where(mask, (values - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count - 1, 1)
    return mean, np.sqrt(var / safe), count


def band(mean, sem) -> dict:
    """{"mean", "lo", "hi"}: the 95% band of a mean, mean ± 1.96 standard errors."""
    return {"mean": mean, "lo": mean - 1.96 * sem, "hi": mean + 1.96 * sem}


def mean_band(values) -> dict:
    """Mean over axis 0 (prompts) and its 95% band, float64: (B, ...) -> {"mean", "lo", "hi"}
    arrays; a single prompt gives a zero-width band."""
    values = np.asarray(values, np.float64)
    mean = values.mean(axis=0)
    count = values.shape[0]
    sem = values.std(axis=0, ddof=1) / math.sqrt(count) if count > 1 else 0 * mean
    return band(mean, sem)


def error_curve(preds, ys, normaliser: float, mask) -> dict:
    sq = (np.asarray(preds, np.float64) - np.asarray(ys, np.float64)) ** 2 / normaliser
    mean, sem, _ = masked_mean(sq, mask)
    return band(mean, sem)


def spd_curve(preds_a, preds_b, normaliser: float, mask) -> np.ndarray:
    sq = (np.asarray(preds_a, np.float64) - np.asarray(preds_b, np.float64)) ** 2 / normaliser
    return masked_mean(sq, mask)[0]


def replace_position(xs: jax.Array, i, new_x: jax.Array) -> jax.Array:
    """xs with position i (a traced index is fine) set to new_x (B, d): (B, n, d)."""
    return jax.lax.dynamic_update_index_in_dim(xs, new_x[:, None, :], i, axis=1)


def query_predictions(predict: Predictor, xs: jax.Array, ys: jax.Array,
                      queries: jax.Array) -> jax.Array:
    """ŷ[b, i, q]: the prediction at position i for query `queries[b, q]` with context
    pairs 0..i-1 of prompt b: (B, n, m). One batched call per position (causal predictors
    ignore everything after i, so the rest of the prompt may stay as it is)."""
    batch, n, d = xs.shape
    m = queries.shape[1]
    tiled_xs = jnp.repeat(xs, m, axis=0)  # (B·m, n, d)
    tiled_ys = jnp.repeat(ys, m, axis=0)
    flat_queries = queries.reshape(batch * m, d)

    def at_position(i):
        preds = predict(replace_position(tiled_xs, i, flat_queries), tiled_ys)  # (B·m, n)
        return jax.lax.dynamic_index_in_dim(preds, i, axis=1, keepdims=False).reshape(batch, m)

    return jnp.moveaxis(jax.lax.map(at_position, jnp.arange(n)), 0, 1)  # (B, n, m)


def implicit_weights(query_preds: jax.Array, queries: jax.Array):
    """Least-squares ŵ (B, n, d) with ŷ ≈ queries ŵ, and the pooled uncentred R² (n,)."""
    # Through the SVD with explicit HIGHEST-precision products (pinv's own matmuls would run
    # at the accelerator's default, TF32): m ≥ 2d Gaussian queries are well conditioned.
    left, sing, right_t = jnp.linalg.svd(queries, full_matrices=False)  # (B,m,d) (B,d) (B,d,d)
    coef = einsum("bme,bnm->bne", left, query_preds) / sing[:, None, :]
    w_hat = einsum("bed,bne->bnd", right_t, coef)  # (B, n, d)
    resid = query_preds - einsum("bmd,bnd->bnm", queries, w_hat)
    r2 = 1.0 - jnp.sum(resid**2, axis=(0, 2)) / jnp.maximum(jnp.sum(query_preds**2, (0, 2)),
                                                             1e-30)
    return w_hat, r2


def ilwd_curve(w_hat, w_baseline, w_norm2: float) -> np.ndarray:
    """E_b ‖ŵ − w_B‖² / E‖w‖² per position: (n,)."""
    diff = np.asarray(w_hat, np.float64) - np.asarray(w_baseline, np.float64)
    return np.mean(np.sum(diff**2, axis=-1), axis=0) / w_norm2


def query_gradients(predict: Predictor, xs: jax.Array, ys: jax.Array) -> jax.Array:
    """∂ŷ_i/∂x_i for every position with the context fixed: (B, n, d).

    Forward mode: one JVP per input coordinate, with the same unit tangent for every prompt
    (prompts are independent, so each prompt's output tangent is its own derivative).
    Compiles faster than reverse mode through the scanned layers.
    """
    d = xs.shape[-1]

    def at_position(i):
        x_i = jax.lax.dynamic_index_in_dim(xs, i, axis=1, keepdims=False)  # (B, d)

        def pred_i(x):  # (B, d) -> (B,)
            preds = predict(replace_position(xs, i, x), ys)
            return jax.lax.dynamic_index_in_dim(preds, i, axis=1, keepdims=False)

        tangents = jnp.broadcast_to(jnp.eye(d, dtype=xs.dtype)[:, None, :], (d,) + x_i.shape)
        return jax.vmap(lambda t: jax.jvp(pred_i, (x_i,), (t,))[1], out_axes=1)(tangents)

    return jnp.moveaxis(jax.lax.map(at_position, jnp.arange(xs.shape[1])), 0, 1)


def cosine_curve(grads, weights) -> np.ndarray:
    """Mean over prompts of cos(grad, weight) per position; NaN where a weight is 0 (k = 0)."""
    g, w = np.asarray(grads, np.float64), np.asarray(weights, np.float64)
    norms = np.linalg.norm(g, axis=-1) * np.linalg.norm(w, axis=-1)  # (B, n)
    cos = np.where(norms > 0, np.sum(g * w, axis=-1) / np.where(norms > 0, norms, 1.0), np.nan)
    defined = np.isfinite(cos).any(axis=0)
    return np.where(defined, np.nanmean(np.where(defined, cos, 0.0), axis=0), np.nan)
