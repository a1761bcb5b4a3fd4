"""Measurements for the linear-self-attention section (von Oswald et al. 2022): trained LSA vs GD.

    icl-lsa train=true   # train (or resume) the LSA presets, then plot (analysis/app.py)
    icl-lsa              # measure and plot existing runs only

Runs live in fixed directories under `runs`: `oswald_lsa/reference` (preset oswald_lsa, one
layer) and `oswald_lsa_deep/L{k}_{untied,tied}` (preset oswald_lsa_deep with model.n_layer=k);
`deep=FOLDER` reads the deep runs from any folder instead (e.g. a Hydra multirun sweep).
This module only measures stored runs; training them is the app's. Measures into
OUT/lsa_numbers.json (`icl-lsa`, analysis/app.py), which figures/lsa.py draws:
lsa_loss_curve.png, lsa_sensitivity.png, lsa_interpolation.png and lsa_depth.png.

Every loss is the squared error at the query with N = n − 1 context pairs (the position the
presets train on), divided by E y² (so the zero predictor scores 1), on held-out prompts of the
run's `eval` stream; η and GD++'s (η_l, γ_l) are fitted on a separate draw of that stream.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from icl_regression.analysis import gd_compare
from icl_regression.checkpoints import checkpoint_steps
from icl_regression.config import TrainConfig
from icl_regression.data import tasks
from icl_regression.models.lsa import constructed_lsa
from icl_regression.run import load_config, load_run
from icl_regression.storage import finite_or_none, read_jsonl

DEPTHS = (2, 3, 4, 5)


def finite_numbers(value):
    """Nested dicts / lists of the measurements with NaN and ±inf as None (strict JSON)."""
    if isinstance(value, dict):
        return {k: finite_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_numbers(v) for v in value]
    return finite_or_none(value) if isinstance(value, float) else value


def _prompts(cfg: TrainConfig, n_prompts: int, fold: int):
    """Held-out prompts: fold 0 evaluates, fold 1 fits η / GD++ (disjoint draws)."""
    key = jax.random.fold_in(tasks.stream_key(cfg.seed, "eval"), fold)
    xs, ys, _ = tasks.sample_prompts(key, cfg.task, n_prompts, cfg.seed)
    return xs, ys


def measure_single(run_dir: Path, n_eval: int = 4096, n_curve: int = 1024) -> dict:
    """One-layer run: trained vs optimal-η GD (loss, prediction difference, sensitivity), the
    weight distance and interpolation path, and loss / cosine at every kept checkpoint."""
    run = load_run(run_dir)
    cfg, norm = run.config, tasks.expected_y2(run.config.task)
    xs, ys = _prompts(cfg, n_eval, 0)
    eta = gd_compare.optimal_gd_eta(*_prompts(cfg, n_eval, 1), n_steps=1)
    gd = constructed_lsa(cfg.task.d, eta, 1, n_head=cfg.model.n_head,
                         tie_layers=cfg.model.tie_layers)
    alphas = np.linspace(0.0, 1.0, 11)
    out = {"run_dir": str(run_dir), "step": run.step, "eta": eta,
           "gd_loss": gd_compare.loss_at(gd, xs, ys) / norm,
           "trained_loss": gd_compare.loss_at(run.predict, xs, ys) / norm,
           **gd_compare.compare_predictors(run.predict, gd, xs, ys),
           "weight_distance": gd_compare.weight_distance(run.model, gd),
           "alphas": alphas.tolist(),
           "interpolation": (gd_compare.interpolation_losses(run.model, gd, xs, ys, alphas)
                             / norm).tolist()}
    out["pred_diff"] /= norm
    curve_xs, curve_ys = xs[:n_curve], ys[:n_curve]
    curve = []
    for step in [0, *checkpoint_steps(run_dir / "checkpoints")]:  # step 0: the initialisation
        predict = (run.untrained(cfg.seed) if step == 0 else run.at_step(step)).predict
        compared = gd_compare.compare_predictors(predict, gd, curve_xs, curve_ys)
        curve.append({"step": step, "loss": gd_compare.loss_at(predict, curve_xs, curve_ys) / norm,
                      "cosine": compared["cosine"], "l2": compared["l2"],
                      "l2_rel": compared["l2_rel"]})
    out["curve"] = curve
    out["train_curve"] = [(m["step"], m["loss"] / norm)
                          for m in read_jsonl(run_dir / "metrics.jsonl")]
    return out


def find_deep_runs(folder: Path) -> dict:
    """{(n_layer, "tied" | "untied"): run_dir} for every trained LSA run below `folder` (the
    fixed directories of --train or a Hydra multirun sweep); the last path wins on repeats."""
    found = {}
    for config_file in sorted(folder.glob("**/config.json")):
        run_dir = config_file.parent
        model = load_config(run_dir).model
        if model.name == "lsa" and (run_dir / "checkpoints").exists():
            found[(model.n_layer, "tied" if model.tie_layers else "untied")] = run_dir
    return found


def _error_stats(predict, xs, ys, norm: float) -> tuple[float, float]:
    """Mean and median over prompts of the normalised squared error at the last position
    (deep linear attention has heavy-tailed errors: a few prompts can dominate the mean)."""
    errors = np.square(np.asarray(predict(xs, ys))[:, -1] - np.asarray(ys)[:, -1]) / norm
    return float(errors.mean()), float(np.median(errors))


def measure_depths(single_dir: Path, deep_dir: Path, depths=DEPTHS,
                   n_eval: int = 4096) -> list[dict]:
    """Per depth k: trained LSA (untied, tied), k-step GD at its best η, fitted GD++; each as
    mean (key) and median (key_median) normalised error."""
    cfg = load_config(single_dir)
    runs = {(1, "untied"): single_dir, (1, "tied"): single_dir}  # one layer: tying is moot
    runs.update(find_deep_runs(deep_dir) if deep_dir.exists() else {})
    norm = tasks.expected_y2(cfg.task)
    xs, ys = _prompts(cfg, n_eval, 0)
    fit_xs, fit_ys = _prompts(cfg, n_eval, 1)  # the same fit set as measure_single
    rows = []
    for depth in (1, *depths):
        row, predictors = {"depth": depth}, {}
        for key in ("untied", "tied"):
            if (depth, key) in runs:
                run = load_run(runs[(depth, key)])
                if run.config.task != cfg.task:
                    raise ValueError(f"{run.run_dir}: task differs from the one-layer run's")
                predictors[key] = run.predict
        eta = gd_compare.optimal_gd_eta(fit_xs, fit_ys, depth)
        plus = gd_compare.fit_gd_plus_plus(fit_xs, fit_ys, depth)
        predictors["gd"] = gd_compare.gd_predictor(cfg.task.d, eta, depth)
        predictors["gd_pp"] = gd_compare.gd_predictor(cfg.task.d, plus["eta"], depth,
                                                      plus["gamma"])
        row.update(gd_eta=eta, gd_pp_eta=plus["eta"].tolist(),
                   gd_pp_gamma=plus["gamma"].tolist())
        for key, predict in predictors.items():
            row[key], row[f"{key}_median"] = _error_stats(predict, xs, ys, norm)
        rows.append(row)
        print(f"[lsa] depth {depth}: " + ", ".join(
            f"{k}={row[k]:.4f} (median {row[k + '_median']:.4f})" for k in predictors))
    return rows


