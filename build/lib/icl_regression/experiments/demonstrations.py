"""Experiments on the demonstrations: corrupted labels, their order, and how they are chosen."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from icl_regression.baselines import get_baseline, huber
from icl_regression.checkpoints import checkpoint_steps
from icl_regression.config import CORRUPT_MODES, CorruptMode
from icl_regression.config.checks import one_of_each, require
from icl_regression.data import context, tasks
from icl_regression.experiments.options import ExperimentSkipped
from icl_regression.experiments.registry import register_experiment
from icl_regression.experiments.shared import band, clean_task, experiment_key, prompts, sq_error
from icl_regression.figures.experiments import (
    plot_corrupted_demos,
    plot_demo_selection,
    plot_order_sensitivity,
)


@dataclass(frozen=True)
class CorruptionOptions:
    fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    modes: tuple[CorruptMode, ...] = (CorruptMode.noise, CorruptMode.other_w)
    ridge_lam: float = 1.0  # the ridge line (shrinkage also damps outliers)
    huber_delta: float = 0.1  # Huber threshold, in units of the label scale √(E y²)


def check_corruption(c: CorruptionOptions) -> None:
    require(bool(c.fractions) and all(0 <= f <= 1 for f in c.fractions),
            "corrupted_demos.fractions", c.fractions, "each must be in [0, 1]")
    one_of_each(c.modes, CORRUPT_MODES, "corrupted_demos.modes")
    require(0 < c.ridge_lam < math.inf, "corrupted_demos.ridge_lam", c.ridge_lam, "must be > 0")
    require(0 < c.huber_delta < math.inf, "corrupted_demos.huber_delta", c.huber_delta,
            "must be > 0")


@dataclass(frozen=True)
class OrderOptions:
    permutations: int = 8  # random orders of the same demonstrations per prompt
    prompts: int = 500
    steps: tuple[int, ...] | None = None  # checkpoints to evaluate; None: all stored ones


def check_order(r: OrderOptions) -> None:
    require(r.permutations >= 2, "order_sensitivity.permutations", r.permutations,
            "must be >= 2")
    require(r.prompts >= 2, "order_sensitivity.prompts", r.prompts, "must be >= 2")
    require(r.steps is None or (bool(r.steps) and all(s > 0 for s in r.steps)),
            "order_sensitivity.steps", r.steps, "null (all checkpoints) or positive steps")


@dataclass(frozen=True)
class SelectionOptions:
    pool_points: int = 64  # labelled examples per prompt to choose the k demonstrations from


def check_selection(o: SelectionOptions) -> None:
    require(o.pool_points >= 1, "demo_selection.pool_points", o.pool_points, "must be >= 1")


@register_experiment("corrupted_demos", stream_id=3, figure=plot_corrupted_demos,
                     options=CorruptionOptions, check=check_corruption, needs_linear_labels=True)
def corrupted_demos(run, opts) -> dict:
    """Error at the last query (k = n − 1 demonstrations) vs the corrupted fraction.

    One key per mode for every fraction: the corrupted sets are nested as the fraction grows
    (common random numbers), so the curves differ by the corruption alone.
    """
    options = opts.corrupted_demos
    task = clean_task(run)
    k = task.n_points - 1
    xs, ys, _ = prompts(run, task, "corrupted_demos", 0, opts.n_prompts, opts)
    norm = tasks.expected_y2(task)
    delta = options.huber_delta * math.sqrt(norm)
    at_k = lambda predict: lambda xs, ys: predict(xs, ys)[:, k]  # (B,)
    predictors = {"model": at_k(run.predict), "ols": at_k(get_baseline("ols")),
                  f"ridge(lam={options.ridge_lam:g})": at_k(
                      get_baseline("ridge", lam=options.ridge_lam)),
                  "huber": lambda xs, ys: huber.huber_predict_last(xs, ys, delta)}
    result = {"k": k, "fractions": list(options.fractions), "huber_delta": delta,
              "corrupted_counts": [round(f * k) for f in options.fractions],
              "train_corrupt_fraction": run.config.task.corrupt_fraction,
              "train_corrupt_mode": run.config.task.corrupt_mode, "modes": {}}
    for part, mode in enumerate(options.modes, start=1):
        key = experiment_key(run, "corrupted_demos", part, opts)
        errors: dict[str, list] = {name: [] for name in predictors}
        for fraction in options.fractions:
            bad_ys, _ = context.corrupt_context(key, xs, ys, task, fraction, mode, k,
                                              run.config.seed)
            for name, predict in predictors.items():
                errors[name].append(sq_error(predict(xs, bad_ys), ys[:, k], norm))
        result["modes"][mode] = {"error": {name: band(np.stack(e, 1))
                                           for name, e in errors.items()}}
    return result


@register_experiment("order_sensitivity", stream_id=4, figure=plot_order_sensitivity,
                     options=OrderOptions, check=check_order)
def order_sensitivity(run, opts) -> dict:
    """Variance of the prediction at position k over random orders of the same k pairs,
    per stored checkpoint, for the model and (zero up to rounding) for OLS."""
    options = opts.order_sensitivity
    task = clean_task(run)
    stored = checkpoint_steps(run.run_dir / "checkpoints")
    steps = list(options.steps) if options.steps else stored
    missing = sorted(set(steps) - set(stored))
    if missing:
        raise ExperimentSkipped(f"order_sensitivity.steps {missing} are not stored (stored: "
                                f"{stored}); train with keep_period to keep more checkpoints")
    xs, ys, _ = prompts(run, task, "order_sensitivity", 0, options.prompts, opts)
    norm, perms = tasks.expected_y2(task), options.permutations
    tiled_xs, tiled_ys = jnp.tile(xs, (perms, 1, 1)), jnp.tile(ys, (perms, 1))  # (P·B, ...)
    ks = list(range(2, task.n_points))  # one demonstration has a single order
    ols = get_baseline("ols")

    def variance(fn) -> list:  # mean over prompts of the variance over orders, per k
        out = []
        for k in ks:  # the same orders (keys) for every checkpoint and for OLS
            key = experiment_key(run, "order_sensitivity", k, opts)
            shuffled = context.permute_context(key, tiled_xs, tiled_ys, k)
            preds = np.asarray(fn(*shuffled)[:, k], np.float64).reshape(perms, -1)  # (P, B)
            out.append(preds.var(axis=0, ddof=1).mean() / norm)
        return out

    by_step = {}
    for step in tqdm(steps, desc="order_sensitivity: checkpoints", leave=False):
        by_step[str(step)] = variance(run.at_step(step).predict)  # one compilation for all
    return {"k": ks, "error_k": list(range(1, task.n_points)), "permutations": perms,
            "prompts": options.prompts, "steps": steps,
            "variance": {"model": by_step, "ols": variance(ols)},
            "error": {"model": band(sq_error(run.predict(xs, ys), ys, norm)[:, 1:]),
                      "ols": band(sq_error(ols(xs, ys), ys, norm)[:, 1:])}}


@register_experiment("demo_selection", stream_id=5, figure=plot_demo_selection,
                     options=SelectionOptions, check=check_selection)
def demo_selection(run, opts) -> dict:
    """Error vs k when the k demonstrations are the nearest pool points to the query vs k
    random pool points (same pool, same query), for the model and OLS."""
    pool_points = opts.demo_selection.pool_points
    task = clean_task(run)
    n = task.n_points
    if pool_points < n - 1:
        raise ExperimentSkipped(f"demo_selection.pool_points={pool_points} must be >= "
                                f"task.n_points - 1 = {n - 1}")
    pooled = dataclasses.replace(task, n_points=pool_points + 1)  # the last point is the query
    xs, ys, _ = prompts(run, pooled, "demo_selection", 0, opts.n_prompts, opts)
    pool_xs, pool_ys, query, target = xs[:, :-1], ys[:, :-1], xs[:, -1], ys[:, -1]
    norm = tasks.expected_y2(task)
    predictors = {"model": run.predict, "ols": get_baseline("ols")}
    ks = list(range(1, n))
    errors = {how: {name: [] for name in predictors} for how in context.SELECTIONS}
    for k in ks:
        for how in context.SELECTIONS:
            key = experiment_key(run, "demo_selection", k, opts)
            sel_xs, sel_ys, _ = context.select_demonstrations(key, pool_xs, pool_ys, query, k, n,
                                                            how)
            for name, predict in predictors.items():
                errors[how][name].append(sq_error(predict(sel_xs, sel_ys)[:, k], target, norm))
    return {"k": ks, "pool_points": pool_points,
            "error": {how: {name: band(np.stack(e, 1)) for name, e in per.items()}
                      for how, per in errors.items()}}
