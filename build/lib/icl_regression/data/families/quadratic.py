"""quadratic: y = c·(x⊙x)·w + σε, c fixed so E y² equals the linear family's (Garg et al. 2022)."""

from __future__ import annotations

import math

import jax
import numpy as np

from icl_regression.config import TaskConfig
from icl_regression.data import sampling
from icl_regression.data.families.linear import draw_linear, single_component
from icl_regression.data.families.registry import FamilySample, register_family


def quadratic_scale(task: TaskConfig) -> float:
    """c = √(E (w·x)² / E ((x⊙x)·w)²) under the task's x distribution and w prior.

    E ((x⊙x)·w)² = Σ_i E w_i² E x_i⁴ + Σ_{i≠j} μ_i μ_j E x_i² E x_j² (w_i, w_j independent
    around μ; x coordinates independent); E x⁴ = 3 e² for Gaussian x of variance e, a⁴/5 for
    U(−a, a). For x ~ N(0, I), μ = 0 this is c = 1/√3.
    """
    eigs = np.asarray(sampling.x_covariance_eigs(task), np.float64)  # (d,) E x_i²
    mu = np.asarray(sampling.w_mean_vector(task), np.float64)  # (d,)
    w2 = sampling.prior_w_variance(task) + mu**2  # (d,) E w_i²
    fourth = (np.full_like(eigs, task.x_uniform_half_width**4 / 5) if task.x_dist == "uniform"
              else 3 * eigs**2)  # (d,) E x_i⁴
    mx = mu * eigs
    quad = float(np.sum(w2 * fourth) + np.sum(mx) ** 2 - np.sum(mx**2))
    return math.sqrt(sampling.linear_signal_y2(task) / quad) if quad > 0 else 1.0


@register_family("quadratic", stream_id=4, expected_y2=sampling.linear_expected_y2,
                 baselines=("zero", "averaging", "ols", "ridge_grid", "knn"),
                 oracle=lambda task: (("ols", {}),))
def sample_quadratic(key, task, batch_size, seed=0, active_dims=None) -> FamilySample:
    """The linear family's x and w (same key), labels c (x⊙x)·w."""
    xs, _, ws, noise_key = draw_linear(key, task, batch_size, seed, active_dims)
    with jax.ensure_compile_time_eval():  # a constant, also inside the jitted train step
        scale = quadratic_scale(task)
    ys = scale * sampling.einsum("bnd,bd->bn", xs * xs, ws)  # (B, n)
    ys = sampling.add_noise(noise_key, ys, task.noise_std)
    return FamilySample(xs, ys, ws, single_component(batch_size))

