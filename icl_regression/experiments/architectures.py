"""The architecture comparison: one record per trained run of any registered model, asked
through the model contract only, so every sequence model is measured the same way.

Per run: error vs k at the training length for the model and its task's baselines; error on
prompts up to `extrapolate` × the training points (as far as the model reads: a learned
positional table stops it at its rows); the layer-by-layer read-out (the contract's `lens` on
every layer's hidden state at the x tokens); for a looped model, error vs the number of loops
run at evaluation; and, on the linear task, the time and memory of one forward pass on
`cost_points`-point prompts for an untrained copy of the architecture (its positional table,
if any, widened: cost does not depend on the parameter values). `figures/architectures.py`
draws the records, `experiments/architectures_page.py` writes docs/architectures.md from them.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import jax
import numpy as np

from icl_regression.baselines import get_baseline
from icl_regression.config.checks import require
from icl_regression.data import tasks
from icl_regression.evaluate.layerwise import layer_readouts
from icl_regression.experiments import shared as common
from icl_regression.experiments.registry import register_experiment
from icl_regression.figures.architectures import plot_architectures
from icl_regression.models import build_model, count_params
from icl_regression.storage import read_jsonl


@dataclass(frozen=True)
class ArchitecturesOptions:
    extrapolate: int = 4  # prompts up to this many × the training points
    loops_factor: int = 4  # a looped model is run with 1 … this × its training loops
    cost_points: int = 1024  # prompt length of the forward-pass timing (linear task only)
    cost_prompts: int = 8  # prompts per timed forward pass


def check_architectures(o: ArchitecturesOptions) -> None:
    for key in ("extrapolate", "loops_factor", "cost_points", "cost_prompts"):
        require(getattr(o, key) >= 1, f"architectures.{key}", getattr(o, key), "must be >= 1")


def task_baselines(task) -> dict:
    """name -> predictor: the baselines each task is compared with (the cheap ones of its
    evaluation suite: least squares and averaging; the lasso for sparse w; CART trees)."""
    out = {"ols": get_baseline("ols"), "averaging": get_baseline("averaging")}
    if task.w_prior == "sparse":
        out["lasso(alpha=0.1)"] = get_baseline("lasso", alpha=0.1)
    if task.family == "decision_tree":
        out[f"tree(max_depth={task.tree_depth})"] = get_baseline(
            "tree", max_depth=task.tree_depth, progress=False)
        out["knn(k=3)"] = get_baseline("knn", k=3)
    return out


def errors(preds: dict, ys, norm: float) -> dict:
    return {name: common.band(common.sq_error(p, ys, norm)) for name, p in preds.items()}


def training_record(run) -> dict:
    """What the run's own training logged: steps/s and wall time (a shared CPU: indicative)."""
    path = run.run_dir / "metrics.jsonl"
    lines = read_jsonl(path) if path.exists() else []
    last = lines[-1] if lines else {}
    rates = [line["steps_per_sec"] for line in lines if "steps_per_sec" in line]
    return {"train_s": last.get("elapsed_s"), "steps": last.get("step"),
            "steps_per_s_median": float(np.median(rates)) if rates else None}


def extrapolation(run, task, own: ArchitecturesOptions, opts) -> dict:
    """Error vs k on prompts longer than in training, as far as the model reads."""
    wanted = own.extrapolate * task.n_points
    table = run.model.max_points
    n_points = wanted if table is None else min(wanted, table)
    if n_points <= task.n_points:
        return {"skipped": f"reads at most {table} points (trained on {task.n_points})"}
    longer = dataclasses.replace(task, n_points=n_points)
    xs, ys, _ = common.prompts(run, longer, "architectures", 1, opts.n_prompts, opts)
    preds = {"model": run.predict(xs, ys), "ols": get_baseline("ols")(xs, ys)}
    return {"n_points": n_points, "limit": "positional table" if table is not None and
            table < wanted else None, "error": errors(preds, ys, tasks.expected_y2(longer))}


def layers(run, xs, ys, norm: float) -> list:
    """Mean error vs k of the lens read-out of each layer (0: after the read-in)."""
    _, lensed = layer_readouts(run, np.asarray(xs), np.asarray(ys))  # (L+1, B, n)
    return [common.to_list(common.sq_error(p, ys, norm).mean(0)) for p in lensed]


def loop_counts(run, xs, ys, norm: float, opts) -> dict | None:
    """A looped model: mean error vs k when run with 1 … loops_factor × its loops."""
    if run.config.model.name != "looped":
        return None
    from icl_regression.models.looped import with_loops

    trained = run.config.model.n_loops
    counts = sorted({1, 2, trained // 2 or 1, trained, *range(trained, opts.loops_factor *
                                                              trained + 1, trained)})
    return {"trained": trained, "loops": counts,
            "error": [common.to_list(common.sq_error(with_loops(run, n).predict(xs, ys), ys,
                                                     norm).mean(0)) for n in counts]}


def forward_cost(run, opts) -> dict:
    """Compile, then time one forward pass of an untrained copy on long prompts; XLA's
    memory analysis of that program (arguments + outputs + temporaries)."""
    from flax import nnx

    model_cfg = run.config.model
    if hasattr(model_cfg, "max_len") and model_cfg.positions == "learned":
        model_cfg = dataclasses.replace(model_cfg, max_len=opts.cost_points)
    task = dataclasses.replace(run.config.task, n_points=opts.cost_points)
    graphdef, params = nnx.split(build_model(model_cfg, task, 0))
    forward = jax.jit(lambda p, xs, ys: nnx.merge(graphdef, p)(xs, ys))
    xs, ys, _ = tasks.sample_prompts(jax.random.key(0), task, opts.cost_prompts, 0)
    start = time.perf_counter()
    compiled = forward.lower(params, xs, ys).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(params, xs, ys))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, xs, ys))
        times.append(time.perf_counter() - start)
    memory = compiled.memory_analysis()
    used = None if memory is None else (memory.argument_size_in_bytes + memory.output_size_in_bytes
                                        + memory.temp_size_in_bytes)
    return {"n_points": opts.cost_points, "n_prompts": opts.cost_prompts,
            "n_tokens": run.model.n_tokens(opts.cost_points), "compile_s": compile_s,
            "forward_s": min(times), "memory_mib": None if used is None else used / 2**20}


@register_experiment("architectures", stream_id=7, figure=plot_architectures,
                     options=ArchitecturesOptions, check=check_architectures, multi_run=True)
def architectures(run, opts) -> dict:
    """One run's numbers for the architecture comparison (module docstring)."""
    o = opts.architectures
    task = common.clean_task(run)
    xs, ys, _ = common.prompts(run, task, "architectures", 0, opts.n_prompts, opts)
    norm = tasks.expected_y2(task)
    preds = {"model": run.predict(xs, ys)} | {
        name: predict(xs, ys) for name, predict in task_baselines(task).items()}
    model = run.config.model
    return {"model": model.name, "n_params": int(count_params(run.model)),
            "n_layers": run.n_layers, "d_model": model.d_model, "family": task.family,
            "curriculum": bool(getattr(model, "loops_start", 0)),  # a looped model's
            "d": task.d, "n_points": task.n_points, "lr": run.config.optim.lr,
            "training": training_record(run), "k": list(range(task.n_points)),
            "error": errors(preds, ys, norm),
            "extrapolation": extrapolation(run, task, o, opts),
            "layers": layers(run, xs, ys, norm),
            "loops": loop_counts(run, xs, ys, norm, o),
            "cost": forward_cost(run, o) if task.family == "linear" else None}
