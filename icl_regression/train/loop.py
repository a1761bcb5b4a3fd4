"""Training: `python -m icl_regression.train [overrides]` or `icl-train`.

`train_run(cfg, run_dir)` is the importable core; Hydra stops at `main`.
One jitted call runs `log_every` optimizer steps with `lax.scan`, sampling each step's batch
inside the scan from `(seed, step)`: no host data pipeline, exact resume, one compilation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from icl_regression.checkpoints import Checkpointer
from icl_regression.config import (
    TrainConfig,
    effective_loss_target,
    validate,
    validate_devices,
)
from icl_regression.data import tasks
from icl_regression.models import build_model, count_params
from icl_regression.storage import run_lock
from icl_regression.train.curriculum import chunk_points, curriculum_at, stage_end
from icl_regression.train.mesh import DataParallel, split_host_cpu
from icl_regression.train.metrics_log import MetricsWriter, chunk_record, progress_bar
from icl_regression.train.resume import (  # noqa: F401 - check_resumable: the app's precheck
    RESUMABLE_KEYS,
    check_resumable,
    config_dict,
    write_config,
)
from icl_regression.train.signals import StopSignals
from icl_regression.train.targets import loss_targets


class NonFiniteLossError(RuntimeError):
    pass


def make_optimizer(cfg: TrainConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(clipped AdamW, its learning-rate schedule: step -> lr, which the log reports)."""
    o = cfg.optim
    if o.schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(
            0.0, o.lr, o.warmup_steps, max(cfg.steps, o.warmup_steps + 1), o.lr * o.end_lr_ratio)
    else:
        lr = optax.join_schedules(
            [optax.linear_schedule(0.0, o.lr, o.warmup_steps), optax.constant_schedule(o.lr)],
            [o.warmup_steps])
    clip = [optax.clip_by_global_norm(o.grad_clip)] if o.grad_clip > 0 else []
    adam = optax.adamw(lr, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay)
    return optax.chain(*clip, adam), lr


def masked_mse(preds, ys, points, last_only: bool = False, labels=None):
    """Squared error to the targets `ys` over the active positions (or only the last active
    one), and the same normalised by the zero predictor's error on the batch's `labels`
    (default: ys; so 1 is trivial)."""
    positions = jnp.arange(ys.shape[1])
    mask = ((positions == points - 1) if last_only else (positions < points)).astype(jnp.float32)
    sq = jnp.square(preds - ys) * mask  # (B, n)
    count = mask.sum() * ys.shape[0]
    loss = sq.sum() / count
    labels = ys if labels is None else labels
    return loss, loss / jnp.maximum((jnp.square(labels) * mask).sum() / count, 1e-12)


def sharded_batch(cfg: TrainConfig, step, dims, parallel: DataParallel, n_points: int):
    """Inside jit: the training batch of `step` with `n_points` points, its batch axis split
    over the devices."""
    task = dataclasses.replace(cfg.task, n_points=n_points)
    xs, ys, _ = tasks.train_batch(cfg.seed, step, task, cfg.batch_size, dims)
    return parallel.shard_batch(xs), parallel.shard_batch(ys)  # (B, n, d), (B, n)


def make_update(cfg: TrainConfig, graphdef, tx, schedule, parallel: DataParallel):
    """Pure update over `n_steps` steps of `n_points`-point prompts: (params, opt_state,
    start) -> (params, opt_state, per-step metrics dict of (n_steps,) arrays)."""

    last_only = cfg.loss_positions == "last"

    def loss_fn(params, xs, ys, points, step):
        model = nnx.merge(graphdef, params)
        targets = loss_targets(cfg, xs, ys)  # (B, n): ys, or their posterior mean
        if not hasattr(model, "training_predictions"):
            return masked_mse(model(xs, ys), targets, points, last_only, labels=ys)
        # A model whose loss spans several outputs (the looped model's window of loops):
        # the weighted mean of their losses.
        preds, weights = model.training_predictions(xs, ys, step)  # (W, B, n), (W,)
        losses = jax.vmap(lambda p: masked_mse(p, targets, points, last_only, labels=ys))(preds)
        return jax.tree.map(lambda v: (v * weights).sum() / weights.sum(), losses)

    def one_step(carry, step, n_points: int):
        params, opt_state = carry
        dims, points = curriculum_at(cfg, step)
        xs, ys = sharded_batch(cfg, step, dims, parallel, n_points)
        (loss, loss_norm), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, xs, ys, points, step)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {"loss": loss, "loss_norm": loss_norm, "grad_norm": optax.global_norm(grads),
                   "param_norm": optax.global_norm(params), "lr": schedule(step),
                   "curriculum_dims": jnp.asarray(dims), "curriculum_points": jnp.asarray(points)}
        return (params, opt_state), metrics

    def update(params, opt_state, start, n_steps: int, n_points: int):
        steps = start + jnp.arange(n_steps)
        (params, opt_state), metrics = jax.lax.scan(
            lambda carry, step: one_step(carry, step, n_points), (params, opt_state), steps)
        return params, opt_state, metrics

    return jax.jit(update, static_argnums=(3, 4))


@dataclasses.dataclass
class _Session:
    """What one training process works with, besides the state it updates."""

    cfg: TrainConfig
    run_dir: Path
    parallel: DataParallel
    writer_process: bool
    ckpt: Checkpointer
    n_params: int = 0
    update: Any = None
    compiled: dict = dataclasses.field(default_factory=dict)  # (n_steps, n_points) -> update
    compile_s: float = 0.0
    train_s: float = 0.0


def train_run(cfg: TrainConfig, run_dir: str | Path) -> dict:
    """Train (or resume) the run in `run_dir`; returns a summary dict ("stopped_by" names the
    signal that stopped it early, after a checkpoint)."""
    validate(cfg)
    run_dir = Path(run_dir)
    split_host_cpu(cfg.mesh, cfg.batch_size)
    parallel = DataParallel.create(cfg.mesh, batch_size=cfg.batch_size)
    validate_devices(cfg, parallel.n_devices)
    writer_process = jax.process_index() == 0
    with contextlib.ExitStack() as stack:
        if writer_process:  # before anything is written; the other hosts never write here
            stack.enter_context(run_lock(run_dir))
        check_resumable(cfg, run_dir)
        if writer_process:
            write_config(cfg, run_dir)
        ckpt = Checkpointer(run_dir / "checkpoints", cfg.keep_checkpoints, cfg.keep_period,
                            config=config_dict(cfg), writer=writer_process)
        stack.callback(ckpt.close)
        session = _Session(cfg, run_dir, parallel, writer_process, ckpt)
        params, opt_state, start = _restore_or_init(session)
        stop = stack.enter_context(StopSignals())
        step = _train(session, params, opt_state, start, stop)
    stopped_by = stop.name if step < cfg.steps else None  # a signal in the last chunk: done
    if stopped_by:
        stop.forward()  # files closed and the lock released first
    return _summary(session, start, step, stopped_by)


def _restore_or_init(s: _Session):
    """(params, opt_state, step): fresh ones, or the newest checkpoint that restores."""
    cfg, parallel = s.cfg, s.parallel
    model = build_model(cfg.model, cfg.task, cfg.seed)
    s.n_params = count_params(model)
    graphdef, params = nnx.split(model)
    tx, schedule = make_optimizer(cfg)
    params = parallel.replicate(params)
    opt_state = parallel.replicate(tx.init(params))
    start, restored = s.ckpt.restore_newest({"params": params, "opt_state": opt_state}) or (
        0, None)
    if restored is not None:
        params, opt_state = restored["params"], restored["opt_state"]
    s.update = make_update(cfg, graphdef, tx, schedule, parallel)
    print(f"[icl] {cfg.model.name}: {s.n_params:,} parameters; devices: {parallel.n_devices} x "
          f"{jax.devices()[0].platform} ({cfg.batch_size // parallel.n_devices} prompts each); "
          f"loss target: {effective_loss_target(cfg)}; run dir: {s.run_dir}"
          + (f"; resuming from step {start}" if start else ""),
          file=sys.stderr)
    return params, opt_state, start


def _train(s: _Session, params, opt_state, step: int, stop: StopSignals) -> int:
    """Chunks of `log_every` steps until `cfg.steps` or a stop signal; returns the step."""
    cfg = s.cfg
    writer = MetricsWriter(s.run_dir / "metrics.jsonl", step, cfg.tensorboard,
                           s.writer_process)
    bar = progress_bar(cfg.steps, step, cfg.progress and s.writer_process)
    try:
        while step < cfg.steps:
            # Chunks end on the log_every grid, and before a staged curriculum's next shape.
            n_steps = min(cfg.log_every - step % cfg.log_every, stage_end(cfg, step) - step)
            new_params, new_opt_state, metrics, dt = _run_chunk(s, params, opt_state, step,
                                                                n_steps)
            _stop_if_not_finite(s, metrics, step, params, opt_state)
            params, opt_state, step = new_params, new_opt_state, step + n_steps
            record = chunk_record(metrics, step, n_steps, dt, s.train_s)
            writer.write(record)
            bar.update(n_steps)
            bar.set_postfix(loss=f"{record['loss_norm']:.4f}", sps=f"{n_steps / dt:.0f}")
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                # Every process calls save (Orbax synchronises them and writes replicated
                # arrays and metadata from process 0 only); skipping it elsewhere deadlocks.
                s.ckpt.save(step, {"params": params, "opt_state": opt_state})
            if step < cfg.steps and stop.requested():
                if s.ckpt.latest_step() != step:
                    s.ckpt.save(step, {"params": params, "opt_state": opt_state})
                print(f"\n[icl] {stop.name}: stopped at step {step}, checkpointed in "
                      f"{s.ckpt.directory}; the same command resumes it", file=sys.stderr)
                break
    finally:
        bar.close()
        writer.close()
    return step


def _run_chunk(s: _Session, params, opt_state, step: int, n_steps: int):
    """One jitted call of `n_steps` steps (compiled once per chunk length and prompt length)."""
    shape = (n_steps, chunk_points(s.cfg, step))
    if shape not in s.compiled:
        t0 = time.perf_counter()
        s.compiled[shape] = s.update.lower(params, opt_state, step, *shape).compile()
        s.compile_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    new_params, new_opt_state, metrics = s.compiled[shape](params, opt_state, step)
    metrics = jax.device_get(metrics)  # blocks until the chunk is done
    dt = time.perf_counter() - t0
    s.train_s += dt
    return new_params, new_opt_state, metrics, dt


def _stop_if_not_finite(s: _Session, metrics: dict, step: int, params, opt_state) -> None:
    """The NaN guard: keep the state from before the chunk that diverged, and stop."""
    bad = ~np.isfinite(metrics["loss"])
    if not bad.any():
        return
    if s.ckpt.latest_step() != step:  # collective: every process calls save
        s.ckpt.save(step, {"params": params, "opt_state": opt_state})
    raise NonFiniteLossError(
        f"non-finite loss at step {step + int(np.argmax(bad)) + 1}; stopped. The last good "
        f"state (step {step}) is checkpointed in {s.ckpt.directory}; start a new run (another "
        "hydra.run.dir) with a lower optim.lr or optim.grad_clip>0")


def _summary(s: _Session, start: int, step: int, stopped_by: str | None) -> dict:
    done, elapsed = step - start, s.train_s
    summary = {"run_dir": str(s.run_dir), "step": step, "n_params": s.n_params,
               "compile_s": s.compile_s, "train_s": elapsed,
               "steps_per_sec": done / elapsed if elapsed else math.nan,
               "peak_host_mem_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "stopped_by": stopped_by}
    print(f"[icl] trained {done} steps in {elapsed:.1f}s ({summary['steps_per_sec']:.0f} "
          f"steps/s, compile {s.compile_s:.1f}s); run dir: {s.run_dir}", file=sys.stderr)
    return summary
