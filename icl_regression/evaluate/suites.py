"""Evaluation-suite entries, named by each family's `baselines` field: task -> predictors."""

# An entry maps (task, seed, EvalConfig, tuned GD η) to `{name: (baseline, params)}`. Names read
# `baseline(param=value)` (`ridge(lam=bayes)` is λ* = σ² d / τ²), as the figures expect. An
# entry may contribute nothing for a task (lasso without a sparse prior).

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from icl_regression import baselines
from icl_regression.config import TaskConfig
from icl_regression.data import tasks
from icl_regression.data.families import family_of
from icl_regression.registry import Registry

# (task, seed, EvalConfig, tuned GD step sizes (n,)) -> {predictor name: (baseline, params)}
Entry = Callable[..., dict]
SUITE_ENTRIES: Registry[Entry] = Registry("suite entry")


def entry(name: str):
    return SUITE_ENTRIES.register(name)


@entry("zero")
def _zero(task, seed, cfg, gd_eta):
    return {"zero": ("zero", {})}


@entry("averaging")
def _averaging(task, seed, cfg, gd_eta):
    return {"averaging": ("averaging", {})}


@entry("ols")
def _ols(task, seed, cfg, gd_eta):
    return {"ols": ("ols", {})}


@entry("ridge_bayes")
def _ridge_bayes(task, seed, cfg, gd_eta):
    lam_star = tasks.bayes_ridge_lambda(task)
    return {"ridge(lam=bayes)": ("ridge", {"lam": lam_star})} if 0 < lam_star < math.inf else {}


@entry("ridge_grid")
def _ridge_grid(task, seed, cfg, gd_eta):
    return {f"ridge(lam={lam:g})": ("ridge", {"lam": lam}) for lam in cfg.ridge_lams}


@entry("gd")
def _gd(task, seed, cfg, gd_eta):
    return {f"gd(steps={cfg.gd_steps})": ("gd", {"eta": np.asarray(gd_eta, np.float32),
                                                 "steps": cfg.gd_steps})}


@entry("knn")
def _knn(task, seed, cfg, gd_eta):
    return {f"knn(k={cfg.knn_k})": ("knn", {"k": cfg.knn_k})}


@entry("lasso")
def _lasso(task, seed, cfg, gd_eta):
    if task.w_prior != "sparse":
        return {}
    return {f"lasso(alpha={cfg.lasso_alpha:g})": ("lasso", {"alpha": cfg.lasso_alpha})}


@entry("dmmse")
def _dmmse(task, seed, cfg, gd_eta):
    if task.pool_size <= 0:
        return {}
    sigma = cfg.dmmse_noise_std or task.noise_std or baselines.DEFAULT_DMMSE_NOISE_STD
    return {"dmmse": ("dmmse", {"pool": tasks.task_pool(seed, task), "noise_std": sigma})}


@entry("logistic")
def _logistic(task, seed, cfg, gd_eta):
    return {"logistic(lam=1)": ("logistic", {"lam": 1.0})}


@entry("nn_gd")
def _nn_gd(task, seed, cfg, gd_eta):
    return {f"nn_gd(hidden={task.hidden_width})": ("nn_gd", {"hidden": task.hidden_width})}


@entry("tree")
def _tree(task, seed, cfg, gd_eta):
    return {f"tree(max_depth={depth})": ("tree", {"max_depth": depth, "progress": cfg.progress})
            for depth in (task.tree_depth, None)}


@entry("xgboost")
def _xgboost(task, seed, cfg, gd_eta):
    return {"xgboost": ("xgboost", {"progress": cfg.progress})}


@entry("ridge_per_noise")
def _ridge_per_noise(task, seed, cfg, gd_eta):
    """Each σ's own Bayes ridge λ* = σ² d / τ²: the single-λ algorithms a mixture selects from."""
    lams = [s**2 * task.d / task.w_scale**2 for s in task.noise_stds]
    return {f"ridge(sigma={s:g})": ("ridge", {"lam": lam})
            for s, lam in zip(task.noise_stds, lams, strict=True)}


@entry("mixture_bayes")
def _mixture_bayes(task, seed, cfg, gd_eta):
    return {"mixture_bayes": ("mixture_bayes", {"noise_stds": tuple(task.noise_stds),
                                                "w_scale": task.w_scale})}


def baseline_suite(task: TaskConfig, seed: int, cfg, gd_eta) -> dict:
    """name -> (baseline, params): the entries the task's family lists, in its order."""
    suite: dict = {}
    for name in family_of(task).baselines:
        suite.update(SUITE_ENTRIES.get(name)(task, seed, cfg, gd_eta))
    return suite
