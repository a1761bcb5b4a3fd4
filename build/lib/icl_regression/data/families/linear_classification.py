"""linear_classification: y = sign(w·x + σε) ∈ {−1, +1} (Garg et al. 2022); E y² = 1."""

from __future__ import annotations

import jax.numpy as jnp

from icl_regression.data import sampling
from icl_regression.data.families.linear import draw_linear, single_component
from icl_regression.data.families.registry import FamilySample, register_family


def _oracle(task):
    return ("logistic", {}),


@register_family("linear_classification", stream_id=3, expected_y2=lambda task: 1.0,
                 baselines=("zero", "averaging", "ols", "ridge_grid", "knn", "logistic"),
                 oracle=_oracle, classification=True)
def sample_linear_classification(key, task, batch_size, seed=0, active_dims=None):
    """The linear family's draws (same key: same xs, w), labels thresholded at 0 (ties +1);
    σ > 0 flips labels near the boundary."""
    xs, scores, ws, noise_key = draw_linear(key, task, batch_size, seed, active_dims)
    scores = sampling.add_noise(noise_key, scores, task.noise_std)  # (B, n)
    ys = jnp.where(scores >= 0, 1.0, -1.0).astype(jnp.float32)  # (B, n)
    return FamilySample(xs, ys, ws, single_component(batch_size))
