"""What every experiment loop shares: held-out prompts from the run's "eval" stream (keyed by
the experiment's stream id), the clean task, ridge(λ*) and the normalised squared error."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from icl_regression.baselines import get_baseline
from icl_regression.config import TaskConfig
from icl_regression.data import tasks
from icl_regression.evaluate.metrics import mean_band
from icl_regression.experiments.registry import EXPERIMENTS
from icl_regression.storage import finite_or_none


def band(sq_errors: np.ndarray) -> dict:
    """Mean over prompts (axis 0) and a 95% band: (B, ...) -> {"mean", "lo", "hi"} lists."""
    return {stat: to_list(values) for stat, values in mean_band(sq_errors).items()}


def to_list(values) -> list:
    """Array -> flat JSON list; NaN/inf -> null."""
    return finite_or_none(np.ravel(np.asarray(values, float)))


def clean_task(run) -> TaskConfig:
    """The run's task without training-time corruption: experiments corrupt explicitly."""
    return dataclasses.replace(run.config.task, corrupt_fraction=0.0)


def prompts(run, task: TaskConfig, experiment: str, part: int, count: int, opts):
    """Held-out prompts for one experiment: xs (B, n, d), ys (B, n), ws (B, d)."""
    return tasks.sample_prompts(experiment_key(run, experiment, part, opts), task, count,
                                run.config.seed)


def experiment_key(run, experiment: str, part: int, opts) -> jax.Array:
    # Sub-keys 100+ of the eval stream (evaluation uses the first few).
    key = tasks.stream_key(run.config.seed + opts.seed, "eval")
    return jax.random.fold_in(key, 100 + 10 * EXPERIMENTS.stream_id(experiment) + part)


def ridge_bayes(task: TaskConfig) -> Callable:
    """ridge(λ*), the Gaussian prior's posterior mean (λ* = 0 is min-norm OLS)."""
    return get_baseline("ridge", lam=tasks.bayes_ridge_lambda(task))


def sq_error(preds, targets, normaliser: float) -> np.ndarray:
    return (np.asarray(preds, np.float64) - np.asarray(targets, np.float64)) ** 2 / normaliser


def errors_by_setting(run, experiment: str, settings: dict, predictors: dict,
                      opts, reference: str, spd_key: str) -> dict:
    """Per setting (name -> task; its index is the prompts' part): every predictor's error band
    and its mean squared distance to `reference`'s predictions (under `spd_key`)."""
    out = {}
    for part, (setting, setting_task) in enumerate(settings.items()):
        xs, ys, _ = prompts(run, setting_task, experiment, part, opts.n_prompts, opts)
        norm = tasks.expected_y2(setting_task)
        preds = {name: predict(xs, ys) for name, predict in predictors.items()}
        out[setting] = {
            "error": {name: band(sq_error(p, ys, norm)) for name, p in preds.items()},
            spd_key: {name: to_list(sq_error(p, preds[reference], norm).mean(0))
                      for name, p in preds.items() if name != reference}}
    return out
