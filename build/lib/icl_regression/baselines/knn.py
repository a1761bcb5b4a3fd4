"""k nearest neighbours: the mean label of the k closest context points."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from icl_regression.baselines.registry import register_baseline
from icl_regression.config.checks import require


@dataclass(frozen=True)
class KnnKnobs:
    k: int = 3  # neighbours averaged (`icl-eval knn.k=5`)


def _check_knn(knobs: KnnKnobs) -> None:
    require(knobs.k >= 1, "knn.k", knobs.k, "must be >= 1")


@register_baseline("knn", knobs=KnnKnobs, check=_check_knn,
                   predictors=lambda ctx: {f"knn(k={ctx.knobs.k})": {"k": ctx.knobs.k}})
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
