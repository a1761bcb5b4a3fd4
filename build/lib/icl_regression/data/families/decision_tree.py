"""decision_tree: a random full binary tree per prompt (Garg et al. 2022); E y² = 1 + σ²."""

# Internal node m (heap order: children of m are 2m+1, 2m+2) tests coordinate c_m (uniform over
# the active dimensions) against 0 and goes right when x[c_m] > 0; the 2^D leaves hold N(0, 1)
# values, so E y² = 1 whatever the routing.

from __future__ import annotations

import jax
import jax.numpy as jnp

from icl_regression.config import TaskConfig
from icl_regression.data.families.linear import sample_without_w
from icl_regression.data.families.registry import FamilySample, register_family


def tree_params(key: jax.Array, task: TaskConfig, batch_size: int, active_dims=None):
    """coords (B, 2^D − 1) int32, leaves (B, 2^D) float32."""
    c_key, leaf_key = jax.random.split(key)
    n_internal = 2**task.tree_depth - 1
    high = task.d if active_dims is None else active_dims  # curriculum: only active coordinates
    coords = jax.random.randint(c_key, (batch_size, n_internal), 0, high)  # (B, 2^D − 1)
    leaves = jax.random.normal(leaf_key, (batch_size, n_internal + 1), jnp.float32)  # (B, 2^D)
    return coords, leaves


def evaluate_tree(xs: jax.Array, coords: jax.Array, leaves: jax.Array, depth: int) -> jax.Array:
    """Route every x to its leaf: xs (B, n, d) -> ys (B, n)."""
    node = jnp.zeros(xs.shape[:2], jnp.int32)  # (B, n) heap index
    for _ in range(depth):
        coord = jnp.take_along_axis(coords, node, axis=1)  # (B, n)
        value = jnp.take_along_axis(xs, coord[..., None], axis=2)[..., 0]  # (B, n)
        node = 2 * node + 1 + (value > 0).astype(jnp.int32)
    return jnp.take_along_axis(leaves, node - coords.shape[1], axis=1)  # (B, n)


def _check(task) -> str | None:
    if not 1 <= task.tree_depth <= 12:
        return f"task.tree_depth={task.tree_depth!r} is not allowed; must be in 1..12"
    return None


@register_family("decision_tree", stream_id=6, expected_y2=lambda task: 1.0 + task.noise_std**2,
                 baselines=("zero", "averaging", "ols", "knn", "tree", "xgboost"),
                 oracle=lambda task: (("tree", {"max_depth": task.tree_depth}),),
                 has_w=False, check=_check)
def sample_decision_tree(key, task, batch_size, seed=0, active_dims=None) -> FamilySample:
    """The linear family's xs (same key); the tree's draws replace w (no weight vector)."""
    def labels(tree_key, xs):
        coords, leaves = tree_params(tree_key, task, batch_size, active_dims)
        return evaluate_tree(xs, coords, leaves, task.tree_depth)  # (B, n)

    return sample_without_w(key, task, batch_size, active_dims, labels)
