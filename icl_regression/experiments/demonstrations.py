"""Experiments on the demonstrations: corrupted labels, their order, and how they are chosen."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from icl_regression.baselines import get_baseline, huber
from icl_regression.checkpoints import checkpoint_steps
from icl_regression.data import context, tasks
from icl_regression.experiments.common import (
    band,
    clean_task,
    experiment_key,
    prompts,
    register_experiment,
    sq_error,
)
from icl_regression.experiments.options import ExperimentOptions, ExperimentSkipped


@register_experiment("corrupted_demos", stream_id=3)
def corrupted_demos(run, opts: ExperimentOptions) -> dict:
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


@register_experiment("order_sensitivity", stream_id=4)
def order_sensitivity(run, opts: ExperimentOptions) -> dict:
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


@register_experiment("demo_selection", stream_id=5)
def demo_selection(run, opts: ExperimentOptions) -> dict:
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
