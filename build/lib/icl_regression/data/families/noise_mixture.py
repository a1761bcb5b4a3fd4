"""noise_mixture: linear regression, σ uniform over `task.noise_stds` per prompt (Bai et al.)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from icl_regression.config import TaskConfig
from icl_regression.data import sampling
from icl_regression.data.families.linear import draw_linear, linear_oracle
from icl_regression.data.families.registry import FamilySample, register_family


def _expected_y2(task: TaskConfig) -> float:
    return sampling.linear_signal_y2(task) + sum(s**2 for s in task.noise_stds) / len(
        task.noise_stds)


def _oracles(task: TaskConfig):
    """Per σ: the Bayes posterior mean of that σ alone (ridge with its λ* = σ² d / τ²)."""
    return tuple(linear_oracle(_with_noise(task, s))[0] for s in task.noise_stds)


def _with_noise(task: TaskConfig, sigma: float) -> TaskConfig:
    return dataclasses.replace(task, family="linear", noise_std=float(sigma), noise_stds=())


def _check(task) -> str | None:
    if not task.noise_stds or any(not (s > 0 and math.isfinite(s)) for s in task.noise_stds):
        return (f"task.noise_stds={list(task.noise_stds)} is not allowed for "
                "task.family=noise_mixture; needs one or more σ > 0")
    return None


@register_family("noise_mixture", stream_id=7, expected_y2=_expected_y2,
                 baselines=("zero", "averaging", "ols", "ridge_per_noise", "mixture_bayes", "gd",
                            "knn"),
                 oracle=_oracles, linear_labels=True, check=_check,
                 components=lambda task: tuple(f"sigma={s:g}" for s in task.noise_stds))
def sample_noise_mixture(key, task, batch_size, seed=0, active_dims=None) -> FamilySample:
    """The linear family's draws (same key); component c = index of the prompt's σ."""
    xs, ys, ws, noise_key = draw_linear(key, task, batch_size, seed, active_dims)
    comp_key = jax.random.fold_in(key, sampling.COMPONENT_SALT)
    component = jax.random.randint(comp_key, (batch_size,), 0, len(task.noise_stds))  # (B,)
    sigma = jnp.asarray(task.noise_stds, jnp.float32)[component]  # (B,)
    ys = sampling.add_noise(noise_key, ys, sigma[:, None])  # (B, n)
    return FamilySample(xs, ys, ws, component.astype(jnp.int32))
