"""The curriculum's schedule: active (dims, points) at a step, and where staged shapes change.

Masked stages (the default) keep one compiled shape; `curriculum.staged_shapes` compiles each
points stage at its own prompt length, so the loop needs to know where a stage ends.
"""

from __future__ import annotations

import jax.numpy as jnp

from icl_regression.config import TrainConfig


def curriculum_at(cfg: TrainConfig, step):
    """Active (dims, points) at `step`; works on Python ints and traced arrays alike."""
    c, t = cfg.curriculum, cfg.task
    if not c.enabled:
        return t.d, t.n_points
    dims = jnp.minimum(c.dims_start + c.dims_inc * (step // c.dims_interval), c.dims_end or t.d)
    points = jnp.minimum(c.points_start + c.points_inc * (step // c.points_interval),
                         c.points_end or t.n_points)
    return dims, points


def stage_end(cfg: TrainConfig, step: int) -> int:
    """The first step after `step` whose prompt length differs from `step`'s under
    `curriculum.staged_shapes`, or `cfg.steps`: a chunk must not cross it (one shape each)."""
    c = cfg.curriculum
    if not (c.enabled and c.staged_shapes):
        return cfg.steps
    points = int(curriculum_at(cfg, step)[1])
    boundary = (step // c.points_interval + 1) * c.points_interval
    if points >= (c.points_end or cfg.task.n_points) or c.points_inc == 0:
        return cfg.steps
    return min(boundary, cfg.steps)


def chunk_points(cfg: TrainConfig, step: int) -> int:
    """The prompt length a chunk starting at `step` is compiled for."""
    c = cfg.curriculum
    return int(curriculum_at(cfg, step)[1]) if c.enabled and c.staged_shapes else cfg.task.n_points
