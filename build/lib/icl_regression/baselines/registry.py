"""The baseline registry: one `register_baseline` call carries everything about a baseline: the
algorithm, what icl-eval runs of it (its predictor sets: predictor name -> parameters for a
task), the task families that run it by default, its icl-eval knobs (`<set>.<knob>=...`) and a
stream id if it draws randomness. `get_baseline(name, **params)` binds its parameters and
returns a predictor `(xs (B, n, d), ys (B, n)) -> preds (B, n)`.

A *linear* baseline registers its per-prefix weights `(xs, ys, **params) -> ws (B, n, d)`; its
prediction is `ws[:, i] · xs[:, i]` and `get_weights` exposes the weights (probes, ILWD). Any
other baseline registers its predictions directly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax

from icl_regression.baselines.solvers import einsum
from icl_regression.registry import Registry

Predictor = Callable[[jax.Array, jax.Array], jax.Array]


@dataclass(frozen=True)
class BaselineSpec:
    fn: Callable  # (xs, ys, **params) -> ws (B, n, d) if linear else preds (B, n)
    linear: bool  # fn returns weights
    required: tuple[str, ...]  # parameters without a usable default
    # Returns a replacement function for special parameter values (e.g. ridge with λ = 0).
    specialise: Callable[[dict], Callable | None] | None = None
    # Slow (host libraries, per-prefix optimisation): evaluation runs it on a subset of prompts.
    expensive: bool = False


@dataclass(frozen=True)
class SuiteContext:
    """What a predictor set sees when icl-eval builds its predictors for one task."""

    task: Any  # the evaluated TaskConfig
    seed: int  # the evaluation seed (task pools are drawn from it)
    knobs: Any  # the set's knobs dataclass as configured (None if it has none)
    gd_eta: Any  # (n,) the GD step sizes tuned on held-out prompts of the task ...
    gd_steps: int  # ... for this many GD steps
    progress: bool  # slow host baselines may show a progress bar


@dataclass(frozen=True)
class PredictorSet:
    baseline: str  # the registered algorithm its predictors run
    predictors: Callable[[SuiteContext], dict[str, dict]]  # predictor name -> params
    families: tuple[str, ...] = ()  # task families that run it by default, besides those
    # that list it in their own `baselines`
    knobs: type | None = None  # frozen dataclass of its icl-eval options (`<set>.<field>=`)
    check: Callable[[Any], None] | None = None  # knobs -> raises ConfigError if bad


BASELINES: Registry[BaselineSpec] = Registry("baseline")
PREDICTOR_SETS: Registry[PredictorSet] = Registry("predictor set")


def register_baseline(name: str, *, linear: bool = False, required: tuple[str, ...] = (),
                      specialise: Callable[[dict], Callable | None] | None = None,
                      expensive: bool = False, stream_id: int | None = None,
                      predictors: Callable[[SuiteContext], dict] | None = None,
                      families: tuple[str, ...] = (), knobs: type | None = None,
                      check: Callable[[Any], None] | None = None,
                      sets: dict[str, PredictorSet] | None = None):
    """Decorator on `fn(xs, ys, **params)`: `@register_baseline("knn", predictors=...)`.

    `predictors(ctx) -> {predictor name: params}` is what icl-eval runs of it, as the predictor
    set of the same name (default, for a baseline that needs no parameter: itself with its
    defaults); `families` run that set by default, `knobs` / `check` are its options; `sets`
    adds more named sets of the same baseline (ridge: Bayes λ, a grid, one λ per noise level).
    """
    def decorate(fn: Callable) -> Callable:
        BASELINES.register(name, BaselineSpec(fn, linear, tuple(required), specialise,
                                              expensive), stream_id=stream_id)
        own = predictors or (None if required else (lambda ctx: {name: {}}))
        if own is not None:
            PREDICTOR_SETS.register(name, PredictorSet(name, own, tuple(families), knobs, check))
        for set_name, spec in (sets or {}).items():
            PREDICTOR_SETS.register(set_name, spec)
        return fn
    return decorate


def predict_with_weights(ws: jax.Array, xs: jax.Array) -> jax.Array:
    """preds[:, i] = ws[:, i] · xs[:, i]: (B, n, d), (B, n, d) -> (B, n)."""
    return einsum("bnd,bnd->bn", ws, xs)


_predict_jit = jax.jit(predict_with_weights)


def _bind(name: str, params: dict) -> tuple[BaselineSpec, Callable]:
    spec = BASELINES.get(name)
    allowed = list(inspect.signature(spec.fn).parameters)[2:]
    for key in params:
        if key not in allowed:
            raise ValueError(f"baseline {name!r}: parameter {key!r} is unknown; "
                             f"allowed: {', '.join(allowed) or 'none'}")
    missing = [key for key in spec.required if key not in params]
    if missing:
        raise ValueError(f"baseline {name!r}: parameter {missing[0]!r} is required")
    special = spec.specialise(params) if spec.specialise else None
    # fn is jitted with numeric params traced (one compilation serves every λ, η, pool).
    return spec, special if special is not None else partial(spec.fn, **params)


def get_weights(name: str, **params) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Per-prefix weights `(xs, ys) -> ws (B, n, d)` of a linear baseline."""
    spec, fn = _bind(name, params)
    if not spec.linear:
        linear = ", ".join(n for n, s in BASELINES.items() if s.linear)
        raise ValueError(f"baseline {name!r} has no weight vector; "
                         f"weight-based baselines: {linear}")
    return fn


def get_baseline(name: str, **params) -> Predictor:
    """A predictor `(xs (B, n, d), ys (B, n)) -> preds (B, n)` by name."""
    spec, fn = _bind(name, params)
    if not spec.linear:
        return fn
    return lambda xs, ys: _predict_jit(fn(xs, ys), xs)
