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

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp

from icl_regression.config import TaskConfig

# Disjoint random streams: training data never overlaps held-out evaluation/probe prompts.
STREAMS = {"init": 0, "train": 1, "pool": 2, "eval": 3, "probe": 4, "control": 5}
CORRUPT_SALT = 7  # folded into a prompt key for its corruption draws (other draws unchanged)
COMPONENT_SALT = 11  # folded into a prompt key for a mixture's component draws
einsum = partial(jnp.einsum, precision=jax.lax.Precision.HIGHEST)  # full float32 everywhere


def stream_key(seed: int, stream: str) -> jax.Array:
    """The root key of one random stream of a run."""
    return jax.random.fold_in(jax.random.key(seed), STREAMS[stream])


def x_covariance_eigs(task: TaskConfig) -> jax.Array:
    """Diagonal of Σ for x (axis-aligned): ones, or the skewed spectrum ∝ 1/(i+1), trace d."""
    if task.x_dist == "skewed":
        eigs = 1.0 / jnp.arange(1, task.d + 1, dtype=jnp.float32)  # (d,)
        return eigs * (task.d / eigs.sum())
    if task.x_dist == "uniform":
        return jnp.full((task.d,), task.x_uniform_half_width**2 / 3.0, jnp.float32)
    return jnp.ones((task.d,), jnp.float32)


def held_out_task(task: TaskConfig) -> TaskConfig:
    """The task that held-out prompts (evaluation, probes, `Run.sample`) come from: the training
    distribution without training-time label corruption."""
    return dataclasses.replace(task, corrupt_fraction=0.0)


def w_mean_vector(task: TaskConfig) -> jax.Array:
    return jnp.full((task.d,), task.w_mean / math.sqrt(task.d), jnp.float32)  # (d,)


def prior_w_variance(task: TaskConfig) -> float:
    """Per-coordinate prior variance τ²/d of w (the Gaussian prior)."""
    return task.w_scale**2 / task.d


def bayes_ridge_lambda(task: TaskConfig) -> float:
    """λ* = σ² / (τ²/d): ridge with this λ is the posterior mean under the Gaussian prior."""
    var = prior_w_variance(task)
    return task.noise_std**2 / var if var > 0 else math.inf


def expected_y2(task: TaskConfig) -> float:
    """E y² under the task at full dimension: the zero predictor's expected squared error
    (each family's own normalisation; `linear_expected_y2` for the linear ones)."""
    from icl_regression.data.families import family_of  # the registry imports this module

    return float(family_of(task).expected_y2(task))


def linear_signal_y2(task: TaskConfig) -> float:
    """E (w·x)² under the w prior and the x distribution (no label noise)."""
    return linear_expected_y2(dataclasses.replace(task, noise_std=0.0))


def linear_expected_y2(task: TaskConfig) -> float:
    """E y² of y = w·x + σε at full dimension."""
    eigs = x_covariance_eigs(task)
    mu = w_mean_vector(task)
    if task.w_prior == "fixed":
        w_second = jnp.float32(task.w_scale**2) / task.d + mu**2  # the fixed w is one draw
    else:
        w_second = jnp.full((task.d,), prior_w_variance(task)) + mu**2  # E w_i²
    return float(jnp.sum(eigs * w_second) + task.noise_std**2)


def sample_xs(key: jax.Array, task: TaskConfig, batch_size: int) -> jax.Array:
    shape = (batch_size, task.n_points, task.d)
    if task.x_dist == "uniform":
        a = task.x_uniform_half_width
        return jax.random.uniform(key, shape, jnp.float32, -a, a)  # (B, n, d)
    return jax.random.normal(key, shape, jnp.float32) * jnp.sqrt(x_covariance_eigs(task))


def masked_xs(key: jax.Array, task: TaskConfig, batch_size: int,
              active_dims: int | jax.Array | None = None) -> jax.Array:
    """x draws with the curriculum's inactive coordinates zeroed: (B, n, d)."""
    xs = sample_xs(key, task, batch_size)  # (B, n, d)
    if active_dims is not None:
        xs = xs * (jnp.arange(task.d) < active_dims)  # (B, n, d): curriculum masks dims
    return xs


def add_noise(key: jax.Array, ys: jax.Array, noise_std) -> jax.Array:
    """ys + σ ε, ε ~ N(0, 1); σ a float (skipped when 0, so noiseless draws stay exact) or a
    per-prompt (B, 1) array."""
    if isinstance(noise_std, (int, float)) and noise_std == 0:
        return ys
    return ys + noise_std * jax.random.normal(key, ys.shape, jnp.float32)  # (B, n)


def sample_ws_from_prior(key: jax.Array, task: TaskConfig, count: int) -> jax.Array:
    """Draws from the w prior (ignoring the pool): (count, d)."""
    mu = w_mean_vector(task)
    z_key, support_key = jax.random.split(key)
    z = jax.random.normal(z_key, (count, task.d), jnp.float32)
    if task.w_prior == "sparse":
        # s coordinates chosen uniformly without replacement: the s smallest of d uniforms.
        ranks = jnp.argsort(jnp.argsort(jax.random.uniform(support_key, (count, task.d)), -1), -1)
        support = (ranks < task.sparsity).astype(jnp.float32)  # (count, d)
        return mu + z * support * (task.w_scale / math.sqrt(task.sparsity))
    return mu + z * (task.w_scale / math.sqrt(task.d))


def task_pool(seed: int, task: TaskConfig) -> jax.Array:
    """The run's fixed pool of M tasks (M = pool_size), identical at every step: (M, d)."""
    return sample_ws_from_prior(stream_key(seed, "pool"), task, max(task.pool_size, 1))


def sample_ws(key: jax.Array, task: TaskConfig, batch_size: int, seed: int) -> jax.Array:
    """Per-prompt w: fresh prior draws, a pool member, or the one fixed w: (B, d)."""
    if task.pool_size > 0:
        pool = task_pool(seed, task)  # (M, d)
        return pool[jax.random.randint(key, (batch_size,), 0, task.pool_size)]
    if task.w_prior == "fixed":
        fixed = sample_ws_from_prior(stream_key(seed, "pool"), task, 1)  # (1, d)
        return jnp.broadcast_to(fixed, (batch_size, task.d))
    return sample_ws_from_prior(key, task, batch_size)


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
    from icl_regression.data.families import sample_family  # the registry imports this module

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
