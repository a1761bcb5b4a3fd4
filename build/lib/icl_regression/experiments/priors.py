"""Experiments on the prior: task diversity (pool vs fresh tasks) and a shifted prior mean."""

from __future__ import annotations

import dataclasses

from icl_regression.baselines import get_baseline
from icl_regression.data import tasks
from icl_regression.experiments.registry import register_experiment
from icl_regression.experiments.shared import clean_task, errors_by_setting, ridge_bayes
from icl_regression.figures.experiments import plot_prior_override, plot_task_diversity
from icl_regression.models import count_params
from icl_regression.storage import finite_or_none


@register_experiment("task_diversity", stream_id=0, figure=plot_task_diversity,
                     needs_linear_labels=True, multi_run=True)
def task_diversity(run, opts) -> dict:
    """Error and SPD to dMMSE (Bayes for the pool) and ridge λ* (Bayes for the Gaussian prior),
    on pool tasks and on fresh tasks."""
    task = clean_task(run)
    predictors = {"model": run.predict, "ridge(lam=bayes)": ridge_bayes(task)}
    if task.pool_size > 0:
        sigma = task.noise_std or 0.1  # a noiseless pool posterior needs some likelihood width
        predictors["dmmse"] = get_baseline(
            "dmmse", pool=tasks.task_pool(run.config.seed, task), noise_std=sigma)
    settings = {"fresh": dataclasses.replace(task, pool_size=0)}
    if task.pool_size > 0:
        settings["pool"] = task
    return {"pool_size": task.pool_size,
            "bayes_lambda": finite_or_none(tasks.bayes_ridge_lambda(task)),  # inf: null
            "k": list(range(task.n_points)),
            "settings": errors_by_setting(run, "task_diversity", settings, predictors, opts,
                                          reference="model", spd_key="spd")}


@register_experiment("prior_override", stream_id=2, figure=plot_prior_override,
                     needs_linear_labels=True)
def prior_override(run, opts) -> dict:
    """Trained with a w prior of mean μ, evaluated on tasks around −μ ("flipped") and +μ.

    prior_mean predicts x·μ whatever the context; bayes_train_prior is the posterior mean under
    the training prior, μ + ridge(λ*) fitted to the residual labels y − x·μ.
    """
    task = clean_task(run)
    mu = tasks.w_mean_vector(task)  # (d,)
    ridge = ridge_bayes(task)
    predictors = {
        "model": run.predict, "ols": get_baseline("ols"),
        "prior_mean": lambda xs, ys: xs @ mu,
        "bayes_train_prior": lambda xs, ys: xs @ mu + ridge(xs, ys - xs @ mu)}
    fresh = dataclasses.replace(task, pool_size=0)  # fresh tasks even for pool-trained runs
    settings = {"flipped": dataclasses.replace(fresh, w_mean=-task.w_mean), "train": fresh}
    return {"w_mean": task.w_mean, "d": task.d, "n_params": int(count_params(run.model)),
            "n_layer": run.config.model.n_layer, "d_model": run.config.model.d_model,
            "k": list(range(task.n_points)),
            "settings": errors_by_setting(run, "prior_override", settings, predictors, opts,
                                          reference="prior_mean", spd_key="spd_prior_mean")}
