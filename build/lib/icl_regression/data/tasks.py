"""Shared prompt-sampling helpers (x distributions, the w prior, streams) and the public
entry points `sample_prompts` / `train_batch` / `expected_y2`, which dispatch on
`task.family` to the task-family registry (`icl_regression.data.families`).

A prompt batch is `xs (B, n, d)`, `ys (B, n)`, `ws (B, d)` (None for families without a weight
vector); for the linear family `ys = xs @ w + σ ε`.

Scale convention (stated once, used everywhere): `w = μ + τ/√d · z` with `z ~ N(0, I_d)`,
`μ = w_mean · 1/√d`, `τ = w_scale`. With the default `x ~ N(0, I)`, `τ = 1`, `μ = 0`, σ = 0 the
label variance is `E y² = E‖w‖² = 1` for every d, so the zero predictor's squared error is 1
and raw squared error already reads as "normalised error". In general `expected_y2(task)`
gives the zero predictor's error and every reported error is divided by it.
The Bayes-optimal ridge for the Gaussian prior is `λ* = σ² / (τ²/d) = σ² d / τ²`.

Randomness is a pure function of `(seed, stream, step)`: `stream_key(seed, "train")` folded
with the step gives the training batch, so any batch can be recomputed and resume is exact.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from icl_regression.config import TaskConfig
from icl_regression.data.families import family_of, sample_family
from icl_regression.data.sampling import (  # noqa: F401  (the public names of tasks)
    COMPONENT_SALT,
    CORRUPT_SALT,
    STREAMS,
    add_noise,
    bayes_ridge_lambda,
    einsum,
    held_out_task,
    linear_expected_y2,
    linear_signal_y2,
    masked_xs,
    prior_w_variance,
    sample_ws,
    sample_ws_from_prior,
    sample_xs,
    stream_key,
    task_pool,
    w_mean_vector,
    x_covariance_eigs,
)


def expected_y2(task: TaskConfig) -> float:
    """E y² under the task at full dimension: the zero predictor's expected squared error
    (each family's own normalisation; `linear_expected_y2` for the linear ones)."""
    return float(family_of(task).expected_y2(task))


def exact_mask(key: jax.Array, batch_size: int, n_points: int, count: int,
               n_candidates: int | None = None) -> jax.Array:
    """(B, n) bool with exactly `count` True per row, uniformly among the first `n_candidates`
    positions (default all): the `count` smallest of i.i.d. uniforms, ranked by double argsort."""
    n_candidates = n_points if n_candidates is None else n_candidates
    if not 0 <= count <= n_candidates <= n_points:
        raise ValueError(f"count={count} must be in 0..n_candidates={n_candidates} <= {n_points}")
    u = jax.random.uniform(key, (batch_size, n_points))  # (B, n)
    u = jnp.where(jnp.arange(n_points) < n_candidates, u, 2.0)  # never pick the others
    return jnp.argsort(jnp.argsort(u, axis=-1), axis=-1) < count  # (B, n)


def corrupt_labels(key: jax.Array, xs: jax.Array, ys: jax.Array, task: TaskConfig, fraction: float,
                   mode: str, seed: int = 0, n_context: int | None = None):
    """Replace exactly round(fraction · n_context) labels of each prompt among its first
    `n_context` positions (default all): ys (B, n) -> corrupted ys (B, n), mask (B, n).

    noise: N(0, E y²) draws, the clean labels' scale; other_w: w'·x + σε with w' drawn from the
    task distribution (the pool, if any), independent of the prompt's own w.
    """
    batch_size, n_points = ys.shape
    n_context = n_points if n_context is None else n_context
    mask_key, w_key, noise_key = jax.random.split(key, 3)
    mask = exact_mask(mask_key, batch_size, n_points, round(fraction * n_context), n_context)
    if mode == "noise":
        with jax.ensure_compile_time_eval():  # a constant, also inside the jitted train step
            scale = math.sqrt(expected_y2(task))
        fake = scale * jax.random.normal(noise_key, ys.shape)  # (B, n)
    elif mode == "other_w":
        other = sample_ws(w_key, task, batch_size, seed)  # (B, d)
        fake = jnp.einsum("bnd,bd->bn", xs, other, precision=jax.lax.Precision.HIGHEST)
        fake = fake + task.noise_std * jax.random.normal(noise_key, ys.shape)  # (B, n)
    else:
        raise ValueError(f"corrupt_mode={mode!r} is not allowed; allowed: noise, other_w")
    return jnp.where(mask, fake, ys), mask


def sample_prompts(key: jax.Array, task: TaskConfig, batch_size: int, seed: int = 0,
                   active_dims: int | jax.Array | None = None):
    """One batch of prompts of `task.family`. Jittable; `active_dims` (curriculum) zeroes x
    beyond it.

    Returns xs (B, n, d), ys (B, n), ws (B, d) or None (families without a weight vector).
    `seed` selects the run's task pool / fixed w. With `task.corrupt_fraction > 0` a fixed
    fraction of each prompt's labels is corrupted.
    """
    xs, ys, ws, _ = sample_family(key, task, batch_size, seed, active_dims)
    if task.corrupt_fraction > 0:  # a separate key: uncorrupted tasks draw exactly as before
        ys, _ = corrupt_labels(jax.random.fold_in(key, CORRUPT_SALT), xs, ys, task,
                               task.corrupt_fraction, task.corrupt_mode, seed)
    return xs, ys, ws


def train_batch(seed: int, step: jax.Array, task: TaskConfig, batch_size: int,
                active_dims: int | jax.Array | None = None):
    """The training batch of one step: a pure function of (seed, step)."""
    key = jax.random.fold_in(stream_key(seed, "train"), step)
    return sample_prompts(key, task, batch_size, seed, active_dims)
