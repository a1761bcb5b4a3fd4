"""Training: `python -m icl_regression.train [overrides]` or `icl-train`.

`train_and_evaluate(cfg, run_dir)` is the importable core; Hydra stops at `main`.
One jitted call runs `log_every` optimizer steps with `lax.scan`, sampling each step's batch
inside the scan from `(seed, step)`: no host data pipeline, exact resume, one compilation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from icl_regression.checkpoints import Checkpointer
from icl_regression.config import ConfigError, TrainConfig, validate, validate_devices
from icl_regression.data import tasks
from icl_regression.models import build_model, count_params
from icl_regression.train.mesh import DataParallel, shutdown_distributed
from icl_regression.train.metrics_log import MetricsWriter, progress_bar

# Keys that may change when a run is resumed; any other difference is refused.
RESUMABLE_KEYS = {"steps", "progress", "tensorboard", "keep_checkpoints", "keep_period",
                  "ckpt_every", "mesh"}


class NonFiniteLossError(RuntimeError):
    pass


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
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


def curriculum_at(cfg: TrainConfig, step):
    """Active (dims, points) at `step`; works on Python ints and traced arrays alike."""
    c, t = cfg.curriculum, cfg.task
    if not c.enabled:
        return t.d, t.n_points
    dims = jnp.minimum(c.dims_start + c.dims_inc * (step // c.dims_interval), c.dims_end or t.d)
    points = jnp.minimum(c.points_start + c.points_inc * (step // c.points_interval),
                         c.points_end or t.n_points)
    return dims, points


def masked_mse(preds, ys, points, last_only: bool = False):
    """Squared error over the active positions (or only the last active one), and the same
    normalised by the zero predictor's error on this batch (so 1 is trivial)."""
    positions = jnp.arange(ys.shape[1])
    mask = ((positions == points - 1) if last_only else (positions < points)).astype(jnp.float32)
    sq = jnp.square(preds - ys) * mask  # (B, n)
    count = mask.sum() * ys.shape[0]
    loss = sq.sum() / count
    return loss, loss / jnp.maximum((jnp.square(ys) * mask).sum() / count, 1e-12)


def sharded_batch(cfg: TrainConfig, step, dims, parallel: DataParallel):
    """Inside jit: the training batch of `step`, its batch axis split over the devices."""
    xs, ys, _ = tasks.train_batch(cfg.seed, step, cfg.task, cfg.batch_size, dims)
    return parallel.shard_batch(xs), parallel.shard_batch(ys)  # (B, n, d), (B, n)


def make_update(cfg: TrainConfig, graphdef, tx, schedule, parallel: DataParallel):
    """Pure update over `n_steps` steps: (params, opt_state, start) -> (params, opt_state,
    per-step metrics dict of (n_steps,) arrays)."""

    def loss_fn(params, xs, ys, points):
        preds = nnx.merge(graphdef, params)(xs, ys)  # (B, n)
        return masked_mse(preds, ys, points, cfg.loss_positions == "last")

    def one_step(carry, step):
        params, opt_state = carry
        dims, points = curriculum_at(cfg, step)
        xs, ys = sharded_batch(cfg, step, dims, parallel)
        (loss, loss_norm), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, xs, ys, points)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {"loss": loss, "loss_norm": loss_norm, "grad_norm": optax.global_norm(grads),
                   "param_norm": optax.global_norm(params), "lr": schedule(step),
                   "curriculum_dims": jnp.asarray(dims), "curriculum_points": jnp.asarray(points)}
        return (params, opt_state), metrics

    def update(params, opt_state, start, n_steps: int):
        steps = start + jnp.arange(n_steps)
        (params, opt_state), metrics = jax.lax.scan(one_step, (params, opt_state), steps)
        return params, opt_state, metrics

    return jax.jit(update, static_argnums=3)


def _config_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def check_resumable(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse to resume a run directory whose stored config differs in a key that matters."""
    stored_path = run_dir / "config.json"
    if not stored_path.exists():
        return
    # Through JSON as stored, so tuple fields (task.noise_stds, ...) compare equal to lists.
    stored, new = json.loads(stored_path.read_text()), json.loads(json.dumps(_config_dict(cfg)))

    def diff(a, b, prefix=""):
        for key in sorted(set(a) | set(b)):
            if key in RESUMABLE_KEYS and not prefix:
                continue
            va, vb = a.get(key), b.get(key)
            if isinstance(va, dict) and isinstance(vb, dict):
                yield from diff(va, vb, f"{prefix}{key}.")
            elif va != vb:
                yield f"{prefix}{key}", va, vb

    for key, old, value in diff(stored, new):
        raise ConfigError(f"{key}={value!r} differs from the run stored in {run_dir} "
                          f"({key}={old!r}); pick a new hydra.run.dir to start a new run")


def train_and_evaluate(cfg: TrainConfig, run_dir: str | Path) -> dict:
    """Train (or resume) the run in `run_dir`; returns a summary dict."""
    validate(cfg)
    run_dir = Path(run_dir)
    check_resumable(cfg, run_dir)
    parallel = DataParallel.create(cfg.mesh)
    validate_devices(cfg, parallel.n_devices)
    writer_process = jax.process_index() == 0
    if writer_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        # Atomic: other processes of a multi-host run may be reading it in check_resumable.
        tmp = run_dir / "config.json.tmp"
        tmp.write_text(json.dumps(_config_dict(cfg), indent=2))
        os.replace(tmp, run_dir / "config.json")

    model = build_model(cfg.model, cfg.task, cfg.seed)
    n_params = count_params(model)
    graphdef, params = nnx.split(model)
    tx, schedule = make_optimizer(cfg)
    params = parallel.replicate(params)
    opt_state = parallel.replicate(tx.init(params))
    ckpt = Checkpointer(run_dir / "checkpoints", cfg.keep_checkpoints, cfg.keep_period)
    start = ckpt.latest_step() or 0
    if start:
        restored = ckpt.restore({"params": params, "opt_state": opt_state})
        params, opt_state = restored["params"], restored["opt_state"]
    print(f"[icl] {cfg.model.name}: {n_params:,} parameters; devices: {parallel.n_devices} x "
          f"{jax.devices()[0].platform} ({cfg.batch_size // parallel.n_devices} prompts each); "
          f"run dir: {run_dir}"
          + (f"; resuming from step {start}" if start else ""), file=sys.stderr)

    update = make_update(cfg, graphdef, tx, schedule, parallel)
    writer = MetricsWriter(run_dir / "metrics.jsonl", start, cfg.tensorboard, writer_process)
    compile_s, compiled = 0.0, {}
    step, elapsed = start, 0.0
    bar = progress_bar(cfg.steps, start, cfg.progress and writer_process)
    try:
        while step < cfg.steps:
            n_steps = min(cfg.log_every, cfg.steps - step)
            if n_steps not in compiled:
                t0 = time.perf_counter()
                compiled[n_steps] = update.lower(params, opt_state, step, n_steps).compile()
                compile_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            new_params, new_opt_state, metrics = compiled[n_steps](params, opt_state, step)
            metrics = jax.device_get(metrics)  # blocks until the chunk is done
            dt = time.perf_counter() - t0
            elapsed += dt
            bad = ~np.isfinite(metrics["loss"])
            if bad.any():
                if ckpt.latest_step() != step:  # collective: every process calls save
                    ckpt.save(step, {"params": params, "opt_state": opt_state})
                raise NonFiniteLossError(
                    f"non-finite loss at step {step + int(np.argmax(bad)) + 1}; stopped. The last "
                    f"good state (step {step}) is checkpointed in {run_dir / 'checkpoints'}; try "
                    f"a lower optim.lr or optim.grad_clip>0")
            params, opt_state, step = new_params, new_opt_state, step + n_steps
            record = {"step": step, "loss": float(metrics["loss"].mean()),
                      "loss_norm": float(metrics["loss_norm"].mean()),
                      "lr": float(metrics["lr"][-1]),
                      "grad_norm": float(metrics["grad_norm"].mean()),
                      "param_norm": float(metrics["param_norm"][-1]),
                      "steps_per_sec": n_steps / dt, "elapsed_s": elapsed,
                      "curriculum_dims": int(metrics["curriculum_dims"][-1]),
                      "curriculum_points": int(metrics["curriculum_points"][-1])}
            writer.write(record)
            bar.update(n_steps)
            bar.set_postfix(loss=f"{record['loss_norm']:.4f}", sps=f"{n_steps / dt:.0f}")
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                # Every process calls save (Orbax synchronises them and writes replicated
                # arrays and metadata from process 0 only); skipping it elsewhere deadlocks.
                ckpt.save(step, {"params": params, "opt_state": opt_state})
    finally:
        bar.close()
        writer.close()
        ckpt.close()
    done = step - start
    summary = {"run_dir": str(run_dir), "step": step, "n_params": n_params,
               "compile_s": compile_s, "train_s": elapsed,
               "steps_per_sec": done / elapsed if elapsed else math.nan,
               "peak_host_mem_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(f"[icl] trained {done} steps in {elapsed:.1f}s ({summary['steps_per_sec']:.0f} "
          f"steps/s, compile {compile_s:.1f}s); run dir: {run_dir}", file=sys.stderr)
    return summary


def main() -> None:
    from icl_regression.cli import run_hydra

    try:
        run_hydra(train_and_evaluate, config_name="train")
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    main()
