"""mixture: each prompt from one of `task.components`, drawn with `task.component_weights`."""

# Bai et al. 2023; Panwar et al. 2023. The components share every other field of the task.

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from icl_regression.config import TaskConfig
from icl_regression.data import sampling
from icl_regression.data.families.registry import FAMILIES, Family, FamilySample, register_family


def component_tasks(task: TaskConfig) -> tuple[TaskConfig, ...]:
    return tuple(dataclasses.replace(task, family=name) for name in task.components)


def component_probs(task: TaskConfig) -> tuple[float, ...]:
    weights = task.component_weights or (1.0,) * len(task.components)
    return tuple(w / sum(weights) for w in weights)


def _resolve(task: TaskConfig) -> Family:
    """The traits of this particular mixture: shared by all parts, or united over them."""
    from icl_regression.data.families.registry import family_of

    parts = [family_of(t) for t in component_tasks(task)]
    baselines = tuple(dict.fromkeys(name for p in parts for name in p.baselines))
    return dataclasses.replace(
        FAMILIES.get("mixture"), resolve=None, baselines=baselines,
        has_w=all(p.has_w for p in parts), linear_labels=all(p.linear_labels for p in parts),
        classification=all(p.classification for p in parts))


def _expected_y2(task: TaskConfig) -> float:
    from icl_regression.data.families.registry import family_of

    return sum(p * family_of(t).expected_y2(t)
               for p, t in zip(component_probs(task), component_tasks(task), strict=True))


def _oracle(task: TaskConfig):
    from icl_regression.data.families.registry import family_of

    return tuple(family_of(t).oracle(t)[0] for t in component_tasks(task))


def _check(task: TaskConfig) -> str | None:
    names = [n for n in task.components if n not in FAMILIES or n == "mixture"]
    if not task.components or names:
        allowed = ", ".join(n for n in FAMILIES if n != "mixture")
        return f"task.components={list(task.components)} is not allowed; allowed: {allowed}"
    weights = task.component_weights
    if weights and (len(weights) != len(task.components) or min(weights) < 0 or not sum(weights)):
        return (f"task.component_weights={list(weights)} is not allowed; one weight >= 0 per "
                "component (not all 0), or empty for uniform")
    return next(filter(None, (FAMILIES.get(t.family).check(t) for t in component_tasks(task))),
                None)


@register_family("mixture", stream_id=8, expected_y2=_expected_y2, baselines=(),
                 oracle=_oracle, check=_check, resolve=_resolve,
                 components=lambda task: tuple(task.components))
def sample_mixture(key, task, batch_size, seed=0, active_dims=None) -> FamilySample:
    """Every component draws the whole batch from its own stream (fold_in of its stream id),
    each prompt keeps its component's draw: static shapes, C× the (cheap) sampling work."""
    parts = [FAMILIES.get(t.family).sample(
        jax.random.fold_in(key, FAMILIES.stream_id(t.family)), t, batch_size, seed, active_dims)
        for t in component_tasks(task)]
    logits = jnp.log(jnp.asarray(component_probs(task), jnp.float32))  # (C,)
    comp_key = jax.random.fold_in(key, sampling.COMPONENT_SALT)
    component = jax.random.categorical(comp_key, logits, shape=(batch_size,))  # (B,)

    def pick(arrays):  # (C, B, ...) -> (B, ...): each prompt's own component
        stacked = jnp.stack(arrays)
        return stacked[component, jnp.arange(batch_size)]

    ws = pick([p.ws for p in parts]) if all(p.ws is not None for p in parts) else None
    return FamilySample(pick([p.xs for p in parts]), pick([p.ys for p in parts]), ws,
                        component.astype(jnp.int32))
