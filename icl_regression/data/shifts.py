"""Evaluation settings: the training distribution and its out-of-distribution variants.

Every variant is a transform of held-out prompts of the training distribution (`xs`, `ys`,
`ws`; the label noise `ε = ys − xs·w` is kept), in NumPy (float64, stored as float32), with its
own generator seeded from a JAX key, so all settings share the same underlying draws (paired
comparisons) and nothing here needs compiling. Variants follow Garg et al. 2022 (§4,
"robustness to distribution shift"):

* whole-prompt variants change every point; all positions k = 0..n-1 are evaluated;
* query variants (orthant, orthogonal_query, repeated_query) give the query a different
  distribution from the context. Since position i is the query of prediction i and a context
  point of every later one, each prompt has ONE query position `eval_position[b]`, assigned
  round-robin over the allowed k, and only that prediction is scored (≈ N / #k prompts per k).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np

from icl_regression.config import TaskConfig
from icl_regression.data import tasks

DESCRIPTIONS = {
    "train": "the training distribution",
    "skewed_cov": "x ~ N(0, Σ), Σ axis-aligned with eigenvalues ∝ 1/(i+1), trace d",
    "half_subspace": "every x projected onto a random d/2-dimensional subspace (per prompt)",
    "orthant": "context x in a random orthant (signs fixed per prompt); query unrestricted",
    "orthogonal_query": "query orthogonal to the context's span, norm kept; k < d only",
    "repeated_query": "query equal to a uniformly chosen earlier context point; k ≥ 1",
    "x_scale_0.33": "every x scaled by 1/3",
    "x_scale_0.5": "every x scaled by 1/2",
    "x_scale_2": "every x scaled by 2",
    "x_scale_3": "every x scaled by 3",
    "y_scale_0.5": "w (so every noiseless label) scaled by 1/2",
    "y_scale_2": "w (so every noiseless label) scaled by 2",
    "noisy_labels": "extra label noise N(0, 0.5²) on every label",
    "shifted_w": "w prior mean shifted by μ = 1/√d·(1, …, 1), ‖μ‖ = 1",
}
SETTINGS = tuple(DESCRIPTIONS)
QUERY_SETTINGS = ("orthant", "orthogonal_query", "repeated_query")


class Prompts(NamedTuple):
    xs: np.ndarray  # (B, n, d)
    ys: np.ndarray  # (B, n)
    ws: np.ndarray | None  # (B, d); None for families without a weight vector
    eval_position: np.ndarray | None = None  # (B,) the one scored position, or None: all


def _labels(xs, ws, noise):
    return (np.einsum("bnd,bd->bn", xs, ws) + noise).astype(np.float32)  # (B, n)


def _round_robin(batch: int, positions: np.ndarray) -> np.ndarray:
    return positions[np.arange(batch) % len(positions)]  # (B,)


def _at(xs, eval_position):
    """xs[b, eval_position[b]]: (B, d)."""
    return xs[np.arange(xs.shape[0]), eval_position]


def _with_query(xs, eval_position, query):
    xs = xs.copy()
    xs[np.arange(xs.shape[0]), eval_position] = query
    return xs


def _orthogonal_query(xs, eval_position):
    """The query's component orthogonal to the span of the earlier points, rescaled to keep
    its norm: (B, d). The span comes from an SVD of the masked context."""
    n = xs.shape[1]
    before = (np.arange(n)[None, :] < eval_position[:, None])[..., None]  # (B, n, 1)
    _, sing, vt = np.linalg.svd(np.where(before, xs, 0.0), full_matrices=False)  # (B, r, d)
    in_span = sing > 1e-5 * np.max(sing, axis=-1, keepdims=True)  # (B, r); none for k = 0
    query = _at(xs, eval_position)
    perp = query - np.einsum("brd,br->bd", vt, np.einsum("brd,bd->br", vt, query) * in_span)
    scale = np.linalg.norm(query, axis=-1) / np.maximum(np.linalg.norm(perp, axis=-1), 1e-12)
    return perp * scale[:, None]


def setting_rng(key: jax.Array, name: str) -> np.random.Generator:
    """The setting's own NumPy generator, seeded from fold_in(key, index of the setting)."""
    sub = jax.random.fold_in(key, SETTINGS.index(name))
    return np.random.default_rng(np.asarray(jax.random.key_data(sub)).tolist())


def make_setting(name: str, key: jax.Array, base: Prompts, task: TaskConfig) -> Prompts:
    """The prompts of setting `name`, built from held-out training-distribution prompts."""
    if name not in DESCRIPTIONS:
        raise ValueError(f"setting {name!r} is unknown; allowed: {', '.join(SETTINGS)}")
    if name == "train":
        return base
    rng = setting_rng(key, name)
    xs, ws = np.asarray(base.xs, np.float64), np.asarray(base.ws, np.float64)
    batch, n, d = xs.shape
    noise = np.asarray(base.ys, np.float64) - _labels(xs, ws, 0.0)  # the original label noise
    position = None
    if name.startswith("x_scale_"):
        xs = xs * float(name.removeprefix("x_scale_"))
    elif name.startswith("y_scale_"):
        ws = ws * float(name.removeprefix("y_scale_"))
    elif name == "skewed_cov":
        eigs = np.asarray(tasks.x_covariance_eigs(dataclasses.replace(task, x_dist="skewed")))
        xs = rng.standard_normal(xs.shape) * np.sqrt(eigs)
    elif name == "half_subspace":
        basis, _ = np.linalg.qr(rng.standard_normal((batch, d, max(d // 2, 1))))  # (B, d, d/2)
        xs = np.einsum("bnd,bde,bfe->bnf", xs, basis, basis)
    elif name == "noisy_labels":
        noise = noise + 0.5 * rng.standard_normal(noise.shape)
    elif name == "shifted_w":
        ws = ws + 1.0 / np.sqrt(d)
    elif name == "orthant":
        position = _round_robin(batch, np.arange(n))
        signs = np.where(rng.random((batch, 1, d)) < 0.5, 1.0, -1.0)
        xs = _with_query(np.abs(xs) * signs, position, _at(xs, position))
    elif name == "orthogonal_query":
        position = _round_robin(batch, np.arange(min(d, n)))
        xs = _with_query(xs, position, _orthogonal_query(xs, position))
    elif name == "repeated_query":
        position = _round_robin(batch, np.arange(1, n))
        source = np.floor(rng.random(batch) * position).astype(int)  # uniform in 0..k-1
        xs = _with_query(xs, position, _at(xs, source))
    xs, ws = xs.astype(np.float32), ws.astype(np.float32)
    return Prompts(xs, _labels(xs, ws, noise), ws, position)
