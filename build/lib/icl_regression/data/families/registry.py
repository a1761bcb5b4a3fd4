"""The task-family registry: `register_family(name, stream_id=...)` adds a sampler, traits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import jax

from icl_regression.config import ConfigError, TaskConfig
from icl_regression.config.checks import POSTERIOR_MEAN_FAMILIES, TASK_CHECKS
from icl_regression.registry import Registry


class FamilySample(NamedTuple):
    """One batch of a family's prompts. `ws` is the latent weight vector (None where the family
    has none); `component` the mixture component of each prompt (0 for single families)."""

    xs: jax.Array  # (B, n, d)
    ys: jax.Array  # (B, n)
    ws: jax.Array | None  # (B, d)
    component: jax.Array  # (B,) int32


# (key, task, batch_size, seed, active_dims) -> FamilySample; pure JAX, jittable.
Sampler = Callable[..., FamilySample]
Oracle = tuple[str, dict]  # (baseline name, params): a component's own best predictor


@dataclass(frozen=True)
class Family:
    sample: Sampler
    expected_y2: Callable[[TaskConfig], float]  # the zero predictor's error (normaliser)
    # Evaluation-suite entries (evaluate/suites.py) icl-eval runs by default, in this order.
    baselines: tuple[str, ...]
    oracle: Callable[[TaskConfig], tuple[Oracle, ...]]  # one per component
    has_w: bool = True  # ws is a weight vector: probe target "w", ILWD and sensitivity apply
    # y = w·x + Gaussian noise of the task's σ: E[y_i | prefix] is the oracle's prediction, so
    # loss_target=posterior_mean applies (under a zero-mean Gaussian w prior; config/checks.py)
    posterior_mean: bool = False
    linear_labels: bool = False  # y = w·x + noise: the OOD shifts and w-based experiments apply
    classification: bool = False  # labels are ±1: evaluation also reports accuracy
    # Labels of the components (a mixture's); () for a single-component family.
    components: Callable[[TaskConfig], tuple[str, ...]] = lambda task: ()
    check: Callable[[TaskConfig], str | None] = lambda task: None  # an error message or None
    # A family whose traits depend on the task (the general mixture) returns the resolved one.
    resolve: Callable[[TaskConfig], Family] | None = field(default=None, repr=False)


FAMILIES: Registry[Family] = Registry("task family")


def register_family(name: str, *, stream_id: int, **traits) -> Callable[[Sampler], Sampler]:
    """Decorator on a sampler: `@register_family("quadratic", stream_id=4, expected_y2=...,
    baselines=(...), oracle=...)`. The stream id keys the family's draws inside mixtures."""
    def decorate(sample: Sampler) -> Sampler:
        FAMILIES.register(name, Family(sample, **traits), stream_id=stream_id)
        return sample
    return decorate


def family_of(task: TaskConfig) -> Family:
    """The task's family, resolved for its parameters (a mixture's traits from its parts)."""
    spec = FAMILIES.get(task.family)
    return spec.resolve(task) if spec.resolve is not None else spec


def sample_family(key: jax.Array, task: TaskConfig, batch_size: int, seed: int = 0,
                  active_dims: int | jax.Array | None = None) -> FamilySample:
    """One batch of `task.family` (without training-time corruption; see tasks.sample_prompts)."""
    return FAMILIES.get(task.family).sample(key, task, batch_size, seed, active_dims)


def check_task(task: TaskConfig) -> None:
    """ConfigError naming the key when the family or its parameters are not allowed."""
    if task.family not in FAMILIES:
        raise ConfigError(f"task.family={task.family!r} is not allowed; "
                          f"allowed: {', '.join(FAMILIES)}")
    message = FAMILIES.get(task.family).check(task)
    if message:
        raise ConfigError(message)
    if task.corrupt_fraction > 0 and task.corrupt_mode == "other_w" and not (
            family_of(task).linear_labels):
        raise ConfigError(f"task.corrupt_mode='other_w' is not allowed for task.family="
                          f"{task.family!r} (its labels are not w·x); allowed: noise")


TASK_CHECKS.append(check_task)  # config's validate_task runs it (config cannot import this)
POSTERIOR_MEAN_FAMILIES.append(lambda: tuple(n for n, f in FAMILIES.items() if f.posterior_mean))
