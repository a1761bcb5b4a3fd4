"""Sampling primitives every task family builds on: random streams, x distributions, w priors,
label noise, the task pool; plain functions of (key, task) that trace under jit."""


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
