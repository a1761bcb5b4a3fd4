"""The linear family y = w·x + σε (today's task, bit-identical draws) and its shared parts."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from icl_regression.config import TaskConfig
from icl_regression.data import sampling
from icl_regression.data.families.registry import FamilySample, register_family

# The evaluation-suite entries of the linear families (evaluate/suites.py), in table order;
# lasso and dmmse contribute only for sparse priors and task pools.
LINEAR_BASELINES = ("zero", "averaging", "ols", "ridge_bayes", "ridge_grid", "gd", "knn",
                    "lasso", "dmmse")


def linear_oracle(task: TaskConfig):
    """The posterior mean under the Gaussian prior: ridge(λ*), or min-norm ols when σ = 0."""
    lam = sampling.bayes_ridge_lambda(task)
    return (("ridge", {"lam": lam}) if 0 < lam < math.inf else ("ols", {})),


def draw_linear(key: jax.Array, task: TaskConfig, batch_size: int, seed: int, active_dims):
    """xs (B, n, d), the noiseless w·x (B, n), ws (B, d) and the noise key: every family built
    on w·x shares these draws (same key, same xs and w)."""
    x_key, w_key, noise_key = jax.random.split(key, 3)
    xs = sampling.masked_xs(x_key, task, batch_size, active_dims)  # (B, n, d)
    ws = sampling.sample_ws(w_key, task, batch_size, seed)  # (B, d)
    ys = jnp.einsum("bnd,bd->bn", xs, ws, precision=jax.lax.Precision.HIGHEST)  # (B, n)
    return xs, ys, ws, noise_key


def single_component(batch_size: int) -> jax.Array:
    return jnp.zeros((batch_size,), jnp.int32)  # (B,)


@register_family("linear", stream_id=0, expected_y2=sampling.linear_expected_y2,
                 baselines=LINEAR_BASELINES, oracle=linear_oracle, linear_labels=True,
                 posterior_mean=True)
def sample_linear(key, task, batch_size, seed=0, active_dims=None) -> FamilySample:
    """y = w·x + σε with w from the task's prior (Gaussian, sparse, fixed or a pool)."""
    xs, ys, ws, noise_key = draw_linear(key, task, batch_size, seed, active_dims)
    ys = sampling.add_noise(noise_key, ys, task.noise_std)  # (B, n)
    return FamilySample(xs, ys, ws, single_component(batch_size))


def sample_without_w(key: jax.Array, task: TaskConfig, batch_size: int, active_dims,
                     labels) -> FamilySample:
    """A family whose latent is a function, not a weight vector: the linear family's xs (same
    key), `labels(latent_key, xs) -> ys (B, n)` from the key w would use, label noise σ."""
    x_key, latent_key, noise_key = jax.random.split(key, 3)
    xs = sampling.masked_xs(x_key, task, batch_size, active_dims)  # (B, n, d)
    ys = sampling.add_noise(noise_key, labels(latent_key, xs), task.noise_std)  # (B, n)
    return FamilySample(xs, ys, None, single_component(batch_size))
