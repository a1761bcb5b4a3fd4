"""Value checks of the training schema, and the helpers every app's checks are written with.

Types, unknown keys and choices are enforced by OmegaConf at composition; these functions check
what a type cannot say (ranges, divisibility, relations between keys) and raise `ConfigError`
with one line `KEY=VALUE is not allowed; <what is allowed>`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import Any

from icl_regression.config.build import type_hints
from icl_regression.config.schema import ConfigError, TaskConfig, TrainConfig


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        shown = [_plain(v) for v in value] if isinstance(value, (list, tuple)) else _plain(value)
        raise ConfigError(f"{key}={shown!r} is not allowed; {allowed}")


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def at_least(cfg: Any, prefix: str, low: int | float, *names: str) -> None:
    """Each named field of `cfg` must be >= `low`."""
    for name in names:
        value = getattr(cfg, name)
        require(value >= low, f"{prefix}{name}", value, f"must be >= {low}")


def one_of_each(values: Sequence[str] | None, allowed: Iterable[str], key: str,
                empty_ok: bool = False) -> None:
    """Every name in `values` is in `allowed` (a registry's names); at least one unless
    `empty_ok`."""
    allowed = tuple(allowed)
    bad = [v for v in values or () if v not in allowed]
    require(not bad and (empty_ok or bool(values)), key, bad[0] if bad else list(values or ()),
            f"choose from {', '.join(allowed)}")


def indices(values: Sequence[int] | None, key: str, what: str) -> None:
    """null, or a non-empty list of integers >= 0."""
    ok = values is None or (len(values) > 0 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values))
    require(ok, key, values, f"a list of {what} >= 0, or null for all")


def well_typed(cfg: Any, prefix: str = "") -> None:
    """For configs built in Python (OmegaConf checks the composed ones): every choice is one of
    its enum's values and every float is finite, nested dataclasses included."""
    for f in dataclasses.fields(cfg):
        value, kind, key = getattr(cfg, f.name), type_hints(type(cfg)).get(f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            well_typed(value, key + ".")
        elif isinstance(kind, type) and issubclass(kind, Enum):
            allowed = [member.value for member in kind]
            require(value in allowed, key, value, f"choose from {', '.join(allowed)}")
        elif isinstance(value, float):
            require(math.isfinite(value), key, value, "must be a finite number")


def once(check: Callable[..., Any]) -> Callable[..., Any]:
    """`check(*args)` runs once per distinct (hashable, frozen) arguments and process: the CLI
    checks a config before Hydra starts and the library function it calls checks it again."""
    passed: dict[tuple, Any] = {}

    @functools.wraps(check)
    def checked(*args: Any) -> Any:
        try:
            seen = args in passed
        except TypeError:  # unhashable arguments (a list in an untyped field): no memo
            return check(*args)
        if not seen:  # a failing check raises here, and is not remembered
            passed[args] = check(*args)
        return passed[args]

    return checked


@once
def validate(cfg: TrainConfig) -> TrainConfig:
    """Check every value; raise ConfigError naming the first offending key."""
    well_typed(cfg)
    validate_task(cfg.task)
    validate_model(cfg)
    validate_optim(cfg)
    validate_curriculum(cfg)
    validate_run(cfg)
    validate_loss_target(cfg)
    return cfg


def validate_task(t: Any) -> None:
    at_least(t, "task.", 1, "d")
    require(t.n_points >= 2, "task.n_points", t.n_points,
            "must be >= 2 (a prompt needs one context pair before a query)")
    require(t.w_scale >= 0, "task.w_scale", t.w_scale, "must be >= 0")
    require(t.noise_std >= 0, "task.noise_std", t.noise_std, "must be >= 0")
    require(t.pool_size >= 0, "task.pool_size", t.pool_size, "must be >= 0 (0 = fresh w)")
    require(t.x_uniform_half_width > 0, "task.x_uniform_half_width", t.x_uniform_half_width,
            "must be > 0")
    require(0 <= t.corrupt_fraction <= 1, "task.corrupt_fraction", t.corrupt_fraction,
            "must be in [0, 1]")
    require(0 <= t.sparsity <= t.d, "task.sparsity", t.sparsity, f"must be in 0..task.d={t.d}")
    if t.w_prior == "sparse":
        require(t.sparsity >= 1, "task.sparsity", t.sparsity,
                f"must be in 1..task.d={t.d} for w_prior=sparse")
    for check in TASK_CHECKS:
        check(t)


# Checks that need a registry this package must not import (the task families register theirs
# on import of icl_regression.data.families): each takes the TaskConfig, raises ConfigError.
TASK_CHECKS: list[Callable[[Any], None]] = []


# -> the registered model names; the model registry adds it (config cannot import models).
MODEL_NAMES: list[Callable[[], tuple[str, ...]]] = []


def validate_model(cfg: TrainConfig) -> None:
    m, t = cfg.model, cfg.task
    names = tuple(name for lookup in MODEL_NAMES for name in lookup())
    require(not MODEL_NAMES or m.name in names, "model.name", m.name,
            f"allowed: {', '.join(names)}")
    at_least(m, "model.", 1, "n_layer", "n_head", "d_model", "mlp_ratio")
    require(m.d_model % m.n_head == 0, "model.n_head", m.n_head,
            f"must divide model.d_model={m.d_model}")
    require(m.max_len == 0 or m.max_len >= t.n_points, "model.max_len", m.max_len,
            f"must be 0 or >= task.n_points={t.n_points}")


def validate_optim(cfg: TrainConfig) -> None:
    # warmup_steps >= steps is allowed on purpose: a short debug run, or a run resumed with a
    # larger `steps`, keeps the schedule of the full run.
    o = cfg.optim
    require(o.lr > 0, "optim.lr", o.lr, "must be > 0")
    at_least(o, "optim.", 0, "warmup_steps", "weight_decay")
    require(0 <= o.end_lr_ratio <= 1, "optim.end_lr_ratio", o.end_lr_ratio, "must be in [0, 1]")
    for name in ("b1", "b2"):
        value = getattr(o, name)
        require(0 <= value < 1, f"optim.{name}", value, "must be in [0, 1)")
    require(o.grad_clip >= 0, "optim.grad_clip", o.grad_clip, "must be >= 0 (0 disables)")


def validate_curriculum(cfg: TrainConfig) -> None:
    c, t = cfg.curriculum, cfg.task
    if not c.enabled:  # the other keys are not read
        return
    require(1 <= c.dims_start <= t.d, "curriculum.dims_start", c.dims_start,
            f"must be in 1..task.d={t.d}")
    require(1 <= c.points_start <= t.n_points, "curriculum.points_start", c.points_start,
            f"must be in 1..task.n_points={t.n_points}")
    require(c.dims_end == 0 or c.dims_start <= c.dims_end <= t.d, "curriculum.dims_end",
            c.dims_end, f"must be 0 (= task.d) or in curriculum.dims_start..task.d={t.d}")
    require(c.points_end == 0 or c.points_start <= c.points_end <= t.n_points,
            "curriculum.points_end", c.points_end,
            f"must be 0 (= task.n_points) or in points_start..task.n_points={t.n_points}")
    at_least(c, "curriculum.", 0, "dims_inc", "points_inc")
    at_least(c, "curriculum.", 1, "dims_interval", "points_interval")


def validate_run(cfg: TrainConfig) -> None:
    """Top-level keys and the mesh."""
    require(bool(cfg.name) and "/" not in cfg.name and cfg.name.strip() == cfg.name, "name",
            cfg.name, "a non-empty folder name (no '/', no surrounding spaces)")
    require(0 <= cfg.seed < 2**32, "seed", cfg.seed, "must be in 0..2**32-1")
    at_least(cfg, "", 1, "steps", "batch_size", "log_every", "keep_checkpoints")
    require(cfg.ckpt_every >= 1 and cfg.ckpt_every % cfg.log_every == 0, "ckpt_every",
            cfg.ckpt_every, f"must be a positive multiple of log_every={cfg.log_every}")
    require(cfg.keep_period >= 0 and cfg.keep_period % cfg.ckpt_every == 0, "keep_period",
            cfg.keep_period, f"must be 0 or a multiple of ckpt_every={cfg.ckpt_every} "
            "(other steps are never saved)")
    mesh = cfg.mesh
    require(mesh.num_processes >= 0, "mesh.num_processes", mesh.num_processes,
            "must be >= 0 (0 = from the environment)")
    require(mesh.process_id >= -1 and (mesh.num_processes == 0
                                       or mesh.process_id < mesh.num_processes),
            "mesh.process_id", mesh.process_id,
            "must be -1 (from the environment) or in 0..mesh.num_processes-1")
    require(mesh.cpu_devices >= 0, "mesh.cpu_devices", mesh.cpu_devices,
            "must be >= 0 (0 = one per core)")
    address = mesh.coordinator_address
    require(not address or address.rpartition(":")[2].isdigit(), "mesh.coordinator_address",
            address, "must be empty (from the environment) or host:port")


# loss_target=posterior_mean: the task keys under which E[y_i | earlier pairs, x_i] is min-norm
# OLS or ridge(λ*) (a zero-mean isotropic Gaussian w, Gaussian label noise, nothing else), for a
# family that declares the trait (data/families registers the lookup: config cannot import it).
POSTERIOR_MEAN_TASK = {"w_prior": ("gaussian",), "w_mean": (0.0,), "pool_size": (0,),
                       "corrupt_fraction": (0.0,)}
POSTERIOR_MEAN_FAMILIES: list[Callable[[], tuple[str, ...]]] = []  # -> families admitting it


def posterior_mean_conflict(task: TaskConfig) -> tuple[str, Any, str] | None:
    """The first task key that rules the closed-form posterior mean out, as (key, value, what
    is allowed), or None when the posterior mean applies."""
    families = tuple(name for lookup in POSTERIOR_MEAN_FAMILIES for name in lookup())
    if task.family not in families:
        return "family", task.family, f"in {list(families)}"
    for name, allowed in POSTERIOR_MEAN_TASK.items():
        value = _plain(getattr(task, name))
        if value not in allowed:
            return name, value, f"in {list(allowed)}"
    return None if task.w_scale > 0 else ("w_scale", task.w_scale, "> 0")


def effective_loss_target(cfg: TrainConfig) -> str:
    """`loss_target` with `auto` resolved: the posterior mean where it is closed form, else y."""
    target = _plain(cfg.loss_target)
    if target != "auto":
        return target
    return "labels" if posterior_mean_conflict(cfg.task) else "posterior_mean"


def validate_loss_target(cfg: TrainConfig) -> None:
    conflict = (posterior_mean_conflict(cfg.task)
                if _plain(cfg.loss_target) == "posterior_mean" else None)
    if conflict:  # `auto` never conflicts: it falls back to the labels
        name, value, allowed = conflict
        require(False, f"task.{name}", value,
                f"loss_target=posterior_mean needs task.{name} {allowed} (the posterior mean is "
                "closed-form only for a zero-mean Gaussian w prior; loss_target=auto falls back "
                "to the labels)")


def validate_devices(cfg: TrainConfig, n_devices: int) -> None:
    """The global batch must split evenly over the data-parallel devices."""
    require(cfg.batch_size % n_devices == 0, "batch_size", cfg.batch_size,
            f"must be divisible by the number of devices ({n_devices})")
