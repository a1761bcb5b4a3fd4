"""Demonstration manipulations for the experiments: reorder, corrupt, and select the in-context
pairs of a prompt, always returning prompts with the shared shapes `xs (B, n, d)`, `ys (B, n)`.

* `permute_context`: the first k pairs in a random order per prompt (pairs stay together), the
  query at position k and everything after it untouched, so a causal predictor's output at k
  sees the same demonstrations in another order.
* `corrupt_context`: exactly round(f · k) of the first k labels replaced (noise, or another
  task's labels); the sampler lives in tasks.py because training uses it too.
* `select_demonstrations`: from a labelled pool of N examples per prompt, the k nearest to the
  query (Euclidean in x) or k uniformly random ones, placed before the query.

Everything is jitted with k as a traced argument (one compilation serves every k), and
randomness comes from explicit keys.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from icl_regression.config import TaskConfig
from icl_regression.data import tasks

SELECTIONS = ("nearest", "random")


def context_permutation(key: jax.Array, batch_size: int, n_points: int, k) -> jax.Array:
    """(B, n) int: per row a uniform permutation of 0..k-1 followed by k..n-1 in order."""
    u = jax.random.uniform(key, (batch_size, n_points))  # (B, n) in [0, 1)
    u = jnp.where(jnp.arange(n_points) < k, u, 1.0 + jnp.arange(n_points))  # tail sorts last
    return jnp.argsort(u, axis=-1)  # (B, n)


@jax.jit
def permute_context(key: jax.Array, xs: jax.Array, ys: jax.Array, k):
    """Shuffle the first k (x, y) pairs of each prompt: (B, n, d), (B, n) -> same shapes.
    k may be traced: one compilation serves every k."""
    order = context_permutation(key, xs.shape[0], xs.shape[1], k)  # (B, n)
    return (jnp.take_along_axis(xs, order[..., None], axis=1),  # (B, n, d)
            jnp.take_along_axis(ys, order, axis=1))  # (B, n)


def corrupt_context(key: jax.Array, xs: jax.Array, ys: jax.Array, task: TaskConfig,
                    fraction: float, mode: str, k: int, seed: int = 0):
    """Corrupt exactly round(fraction · k) of the first k labels (the query's label and later
    ones stay clean): ys (B, n) -> corrupted ys (B, n), mask (B, n)."""
    return tasks.corrupt_labels(key, xs, ys, task, fraction, mode, seed, n_context=k)


def squared_distances(pool_xs: jax.Array, query: jax.Array) -> jax.Array:
    """‖x_j − q‖² from exact differences (no ‖a‖² + ‖b‖² − 2a·b cancellation): (B, N)."""
    return jnp.sum(jnp.square(pool_xs - query[:, None, :]), axis=-1)  # (B, N)


def select_demonstrations(key: jax.Array, pool_xs: jax.Array, pool_ys: jax.Array,
                          query: jax.Array, k, n_points: int, how: str):
    """Prompts whose first k pairs are chosen from the pool and whose position k is the query.

    pool_xs (B, N, d), pool_ys (B, N), query (B, d) -> xs (B, n, d), ys (B, n), chosen (B, n)
    (the pool index at each position, −1 for the query and the padding). nearest: the k pool
    points closest to the query, ordered from the farthest to the nearest (the nearest sits
    next to the query; ties go to the lower index); random: k distinct pool points in random
    order. Positions after k are zero padding, which a causal predictor never reads for its
    output at k. The query's label slot is 0; callers score against their own targets.
    """
    n_pool = pool_xs.shape[1]
    if how not in SELECTIONS:
        raise ValueError(f"how={how!r} is not allowed; allowed: {', '.join(SELECTIONS)}")
    if isinstance(k, int) and not 1 <= k <= min(n_points - 1, n_pool):
        raise ValueError(f"k={k} must be in 1..min(n_points - 1={n_points - 1}, N={n_pool})")
    return _select(key, pool_xs, pool_ys, query, k, n_points, how)


@partial(jax.jit, static_argnames=("n_points", "how"))
def _select(key, pool_xs, pool_ys, query, k, n_points: int, how: str):
    """k may be traced: one compilation serves every k."""
    batch, n_pool, d = pool_xs.shape
    if how == "nearest":  # ascending distance; a stable sort keeps ties in index order
        ranked = jnp.argsort(squared_distances(pool_xs, query), axis=-1, stable=True)  # (B, N)
        rank = k - 1 - jnp.arange(n_points)  # position p holds the (k−1−p)-th nearest
    else:
        ranked = jnp.argsort(jax.random.uniform(key, (batch, n_pool)), axis=-1)  # (B, N)
        rank = jnp.arange(n_points)
    is_demo = jnp.arange(n_points) < k  # (n,)
    picked = jnp.take(ranked, jnp.clip(rank, 0, n_pool - 1), axis=1)  # (B, n)
    chosen = jnp.where(is_demo, picked, -1)  # (B, n)
    demo_xs = jnp.take_along_axis(pool_xs, picked[..., None], axis=1)  # (B, n, d)
    demo_ys = jnp.take_along_axis(pool_ys, picked, axis=1)  # (B, n)
    at_query = (jnp.arange(n_points) == k)[:, None]  # (n, 1)
    xs = jnp.where(is_demo[:, None], demo_xs, jnp.where(at_query, query[:, None, :], 0.0))
    ys = jnp.where(is_demo, demo_ys, 0.0)
    return xs, ys, chosen  # (B, n, d), (B, n), (B, n)
