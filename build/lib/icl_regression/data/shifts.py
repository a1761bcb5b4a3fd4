"""Evaluation settings: the training distribution and its out-of-distribution variants.

Every variant is a transform of held-out prompts of the training distribution (`xs`, `ys`,
`ws`; the label noise `ε = ys − xs·w` is kept), in NumPy (float64, stored as float32), with its
own generator seeded from a JAX key, so all settings share the same underlying draws (paired
comparisons) and nothing here needs compiling. Variants follow Garg et al. 2022 (§4,
"robustness to distribution shift"). Each is registered in SHIFTS with an explicit stream id
(the sub-key of its generator): a new setting takes a new id, and no other setting changes.

* whole-prompt variants change every point; all positions k = 0..n-1 are evaluated;
* query variants (orthant, orthogonal_query, repeated_query) give the query a different
  distribution from the context. Since position i is the query of prediction i and a context
  point of every later one, each prompt has ONE query position `eval_position[b]`, assigned
  round-robin over the allowed k, and only that prediction is scored (≈ N / #k prompts per k).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from icl_regression.config import TaskConfig
from icl_regression.data import tasks
from icl_regression.registry import Registry, import_submodules


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


# A transform: (rng, xs (B, n, d) f64, ws (B, d) f64, noise (B, n) f64, task)
#   -> (xs, ws, noise, eval_position (B,) or None: every position is scored).
Transform = Callable[..., tuple]


class Setting(NamedTuple):
    description: str
    transform: Transform


SHIFTS: Registry[Setting] = Registry("setting")


def register_setting(name: str, stream_id: int, description: str):
    """Decorator registering a transform as the evaluation setting `name`."""
    return lambda fn: SHIFTS.register(name, Setting(description, fn), stream_id=stream_id) and fn


def _scale_x(factor: float) -> Transform:
    return lambda rng, xs, ws, noise, task: (xs * factor, ws, noise, None)


def _scale_w(factor: float) -> Transform:
    return lambda rng, xs, ws, noise, task: (xs, ws * factor, noise, None)


@register_setting("train", 0, "the training distribution")
def _train(rng, xs, ws, noise, task):
    return xs, ws, noise, None


@register_setting("skewed_cov", 1,
                  "x ~ N(0, Σ), Σ axis-aligned with eigenvalues ∝ 1/(i+1), trace d")
def _skewed_cov(rng, xs, ws, noise, task):
    eigs = np.asarray(tasks.x_covariance_eigs(dataclasses.replace(task, x_dist="skewed")))
    return rng.standard_normal(xs.shape) * np.sqrt(eigs), ws, noise, None


@register_setting("half_subspace", 2,
                  "every x projected onto a random d/2-dimensional subspace (per prompt)")
def _half_subspace(rng, xs, ws, noise, task):
    batch, _, d = xs.shape
    basis, _ = np.linalg.qr(rng.standard_normal((batch, d, max(d // 2, 1))))  # (B, d, d/2)
    return np.einsum("bnd,bde,bfe->bnf", xs, basis, basis), ws, noise, None


@register_setting("orthant", 3,
                  "context x in a random orthant (signs fixed per prompt); query unrestricted")
def _orthant(rng, xs, ws, noise, task):
    batch, n, d = xs.shape
    position = _round_robin(batch, np.arange(n))
    signs = np.where(rng.random((batch, 1, d)) < 0.5, 1.0, -1.0)
    return _with_query(np.abs(xs) * signs, position, _at(xs, position)), ws, noise, position


@register_setting("orthogonal_query", 4,
                  "query orthogonal to the context's span, norm kept; k < d only")
def _orthogonal(rng, xs, ws, noise, task):
    batch, n, d = xs.shape
    position = _round_robin(batch, np.arange(min(d, n)))
    return _with_query(xs, position, _orthogonal_query(xs, position)), ws, noise, position


@register_setting("repeated_query", 5,
                  "query equal to a uniformly chosen earlier context point; k ≥ 1")
def _repeated(rng, xs, ws, noise, task):
    batch, n, _ = xs.shape
    position = _round_robin(batch, np.arange(1, n))
    source = np.floor(rng.random(batch) * position).astype(int)  # uniform in 0..k-1
    return _with_query(xs, position, _at(xs, source)), ws, noise, position


for _id, _label in enumerate(("0.33", "0.5", "2", "3"), start=6):
    _words = {"0.33": "1/3", "0.5": "1/2"}.get(_label, _label)
    register_setting(f"x_scale_{_label}", _id, f"every x scaled by {_words}")(
        _scale_x(float(_label)))
for _id, _label in ((10, "0.5"), (11, "2")):
    _words = {"0.5": "1/2"}.get(_label, _label)
    register_setting(f"y_scale_{_label}", _id,
                     f"w (so every noiseless label) scaled by {_words}")(_scale_w(float(_label)))


@register_setting("noisy_labels", 12, "extra label noise N(0, 0.5²) on every label")
def _noisy_labels(rng, xs, ws, noise, task):
    return xs, ws, noise + 0.5 * rng.standard_normal(noise.shape), None


@register_setting("shifted_w", 13, "w prior mean shifted by μ = 1/√d·(1, …, 1), ‖μ‖ = 1")
def _shifted_w(rng, xs, ws, noise, task):
    return xs, ws + 1.0 / np.sqrt(xs.shape[-1]), noise, None


@register_setting("kappa_100", 14, "x ~ N(0, Σ), κ(Σ) = 100 (eigenvalues log-spaced, trace d), "
                  "random eigenbasis per prompt (Fu et al. 2023)")
def _kappa_100(rng, xs, ws, noise, task):
    return _rotated_ill_conditioned(rng, xs.shape, kappa=100.0), ws, noise, None


def _rotated_ill_conditioned(rng: np.random.Generator, shape, kappa: float) -> np.ndarray:
    """x = U diag(√λ) z with λ log-spaced from 1 to 1/κ (rescaled to trace d) and U a uniformly
    random rotation per prompt (QR of a Gaussian, signs fixed by R's diagonal): (B, n, d)."""
    batch, _, d = shape
    eigs = np.geomspace(1.0, 1.0 / kappa, d)
    eigs = eigs * (d / eigs.sum())  # (d,)
    q, r = np.linalg.qr(rng.standard_normal((batch, d, d)))  # (B, d, d)
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return np.einsum("bnd,bed->bne", rng.standard_normal(shape) * np.sqrt(eigs), q)


import_submodules(__package__, skip=("shifts", "families"))  # a new setting: one new file here
SETTINGS = tuple(sorted(SHIFTS.names(), key=SHIFTS.stream_id))  # every setting, by stream id
QUERY_SETTINGS = ("orthant", "orthogonal_query", "repeated_query")  # score one query per prompt


def setting_rng(key: jax.Array, name: str) -> np.random.Generator:
    """The setting's own NumPy generator, seeded from fold_in(key, the setting's stream id)."""
    sub = jax.random.fold_in(key, SHIFTS.stream_id(name))
    return np.random.default_rng(np.asarray(jax.random.key_data(sub)).tolist())


def make_setting(name: str, key: jax.Array, base: Prompts, task: TaskConfig) -> Prompts:
    """The prompts of setting `name`, built from held-out training-distribution prompts."""
    setting = SHIFTS.get(name)  # UnknownName (a ValueError) lists the allowed names
    if name == "train":
        return base
    xs, ws = np.asarray(base.xs, np.float64), np.asarray(base.ws, np.float64)
    noise = np.asarray(base.ys, np.float64) - _labels(xs, ws, 0.0)  # the original label noise
    xs, ws, noise, position = setting.transform(setting_rng(key, name), xs, ws, noise, task)
    xs, ws = xs.astype(np.float32), ws.astype(np.float32)
    return Prompts(xs, _labels(xs, ws, noise), ws, position)
