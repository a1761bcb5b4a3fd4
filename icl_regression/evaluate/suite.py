"""The baselines an evaluation compares the model with, chosen from the task, and their names."""

from __future__ import annotations

import math

import numpy as np

from icl_regression import baselines
from icl_regression.config import TaskConfig
from icl_regression.data import tasks


def baseline_suite(task: TaskConfig, seed: int, cfg, gd_eta) -> dict:
    """name -> (baseline, params): the baselines relevant to the task. Names read
    `family(param=value)` (`ridge(lam=bayes)` is λ* = σ² d / τ²), as the figures expect."""
    suite = {"zero": ("zero", {}), "averaging": ("averaging", {}), "ols": ("ols", {})}
    lam_star = tasks.bayes_ridge_lambda(task)
    if 0 < lam_star < math.inf:
        suite["ridge(lam=bayes)"] = ("ridge", {"lam": lam_star})
    suite.update({f"ridge(lam={lam:g})": ("ridge", {"lam": lam}) for lam in cfg.ridge_lams})
    suite[f"gd(steps={cfg.gd_steps})"] = ("gd", {"eta": np.asarray(gd_eta, np.float32),
                                                  "steps": cfg.gd_steps})
    suite[f"knn(k={cfg.knn_k})"] = ("knn", {"k": cfg.knn_k})
    if task.w_prior == "sparse":
        suite[f"lasso(alpha={cfg.lasso_alpha:g})"] = ("lasso", {"alpha": cfg.lasso_alpha})
    if task.pool_size > 0:
        sigma = cfg.dmmse_noise_std or task.noise_std or baselines.DEFAULT_DMMSE_NOISE_STD
        suite["dmmse"] = ("dmmse", {"pool": tasks.task_pool(seed, task), "noise_std": sigma})
    return suite


def json_params(params: dict) -> dict:
    """Parameters as eval.json shows them: scalars as they are, arrays by their shape."""
    shown = {}
    for k, v in params.items():
        arr = np.asarray(v)
        shown[k] = v if arr.ndim == 0 and not hasattr(v, "shape") else (
            "see gd_eta" if k == "eta" else f"array{list(arr.shape)}")
    return shown
