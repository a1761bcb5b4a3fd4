"""Experiments on size: error vs k across model sizes, and prompts longer than in training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from icl_regression.baselines import get_baseline
from icl_regression.config.checks import require
from icl_regression.data import tasks
from icl_regression.experiments import shared as common
from icl_regression.experiments.options import ExperimentSkipped
from icl_regression.experiments.registry import register_experiment
from icl_regression.figures.experiments import plot_long_context, plot_scale
from icl_regression.models import count_params


@dataclass(frozen=True)
class LongContextOptions:
    n_points: int = 0  # 0: the positional table length (learned) or 3 × n_points (none)


def check_long_context(o: LongContextOptions) -> None:
    require(o.n_points >= 0, "long_context.n_points", o.n_points,
            "must be >= 0 (0: the positional table, or 3 × n_points without positions)")


@register_experiment("scale", stream_id=1, figure=plot_scale, multi_run=True)
def scale(run, opts) -> dict:
    """Error vs k of the model, least squares and averaging; the model's size."""
    task = common.clean_task(run)
    xs, ys, _ = common.prompts(run, task, "scale", 0, opts.n_prompts, opts)
    norm = tasks.expected_y2(task)
    preds = {"model": run.predict(xs, ys), "ols": get_baseline("ols")(xs, ys),
             "averaging": get_baseline("averaging")(xs, ys)}
    model = run.config.model
    return {"n_params": int(count_params(run.model)), "n_layer": model.n_layer,
            "d_model": model.d_model, "d": task.d, "k": list(range(task.n_points)),
            "error": {name: common.band(common.sq_error(p, ys, norm)) for name, p in preds.items()}}


@register_experiment("long_context", stream_id=6, figure=plot_long_context,
                     options=LongContextOptions, check=check_long_context)
def long_context(run, opts) -> dict:
    """Error vs k on prompts longer than the training ones."""
    task, model = common.clean_task(run), run.config.model
    table = model.max_len or task.n_points
    if model.positions == "learned":
        n_points = opts.long_context.n_points or table
        if n_points > table or table <= task.n_points:
            raise ExperimentSkipped(
                f"learned positions cover {table} points (trained on {task.n_points}); prompts "
                f"of {max(n_points, table + 1)} need model.max_len >= that at training, or "
                f"model.positions=none")
    else:
        n_points = opts.long_context.n_points or 3 * task.n_points
    longer = dataclasses.replace(task, n_points=n_points)
    xs, ys, _ = common.prompts(run, longer, "long_context", 0, opts.n_prompts, opts)
    norm = tasks.expected_y2(longer)
    preds = {"model": run.predict(xs, ys), "ols": get_baseline("ols")(xs, ys)}
    if tasks.bayes_ridge_lambda(task) > 0:
        preds["ridge(lam=bayes)"] = common.ridge_bayes(task)(xs, ys)
    return {"train_points": task.n_points, "n_points": n_points, "positions": model.positions,
            "max_len": table, "k": list(range(n_points)),
            "error": {name: common.band(common.sq_error(p, ys, norm)) for name, p in preds.items()}}
