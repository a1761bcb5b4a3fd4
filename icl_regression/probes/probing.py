"""Probing a run: `probe_run(run)` (the app, `icl-probe run_dir=DIR`, is probes/app.py).

Where does a trained transformer hold the weight vector it implicitly fits? `probe_run` loads the
run, draws held-out prompts from the run's `probe` random stream (disjoint from training and
evaluation), captures the residual stream after the embedding (layer 0) and after every block
(layer l) at the chosen token positions, and fits probes (families.py) for the targets of the
prefix each token has seen (targets.py). The same probes run on an untrained model of the
same architecture and, when given, on a model trained with one fixed w: the controls. Results go
to `DIR/probes.json` (schema in the README, section "Probes"), written atomically.
Options: conf/probes.yaml; `ProbeOptions` is the same without Hydra.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from icl_regression.config import ConfigError
from icl_regression.data import tasks
from icl_regression.data.families import family_of
from icl_regression.probes.kinds import LINEAR_ALPHAS, FitOptions, score
from icl_regression.probes.options import (
    ProbeOptions,
    probe_options,
)
from icl_regression.probes.registry import PROBE_KINDS, probe_kind_names
from icl_regression.probes.summary import best_layers, format_probe_summary
from icl_regression.probes.targets import ProbeData, probe_data, token_kinds
from icl_regression.run import Run, load_run
from icl_regression.storage import finite_or_none, write_json

__all__ = ["ProbeOptions", "best_layers", "format_probe_summary", "probe_options", "probe_run"]
SCHEMA_VERSION = 1


def _resolve(run: Run, options: ProbeOptions) -> tuple[list[int], list[int]]:
    """Chosen layers and token positions, checked against the run's model."""
    n_layer, n_tokens = _depth_and_length(run)
    layers = list(options.layers) if options.layers is not None else list(range(n_layer + 1))
    if max(layers) > n_layer:
        raise ConfigError(f"layers={layers} is not allowed; this run has layers 0..{n_layer} "
                          "(0 = after the embedding)")
    if options.positions == "x":
        positions = [int(t) for t in run.x_positions]
    elif options.positions == "y":
        if run.y_positions is None:
            raise ConfigError(f"positions=y is not allowed; model {run.config.model.name!r} "
                              "has no token holding a label alone (x, or token indices)")
        positions = [int(t) for t in run.y_positions]
    else:
        positions = list(options.positions or range(n_tokens))
    if max(positions) >= n_tokens:
        raise ConfigError(f"positions={positions} is not allowed; tokens are 0..{n_tokens - 1}")
    return layers, positions


def _depth_and_length(run: Run) -> tuple[int, int]:
    return run.n_layers, run.n_tokens  # the model contract (models/contract.py)


def _as_run(run: str | Path | Run) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _models(run: Run, options: ProbeOptions, control_run) -> dict[str, Run]:
    """Score prefix -> model: the run (""), its untrained twin, the fixed-w control."""
    models = {"": run}
    if options.untrained_control:
        models["control_"] = run.untrained(run.config.seed + 1)
    if control_run is not None:
        fixed = _as_run(control_run)
        if _depth_and_length(fixed) != _depth_and_length(run) or (
                fixed.config.task.d != run.config.task.d):
            raise ConfigError(f"control_run_dir={str(fixed.run_dir)!r} is not allowed; its layers"
                              ", tokens and task.d must match the probed run's")
        models["fixed_w_"] = fixed
    return models


def fit_probes(kind: str, acts: np.ndarray, positions: np.ndarray, targets: np.ndarray,
               split, options: FitOptions, key: jax.Array, progress: bool = False):
    """One probe kind on one model's activations -> held-out (r2, mse), each (G, L, P)."""
    probe_kind_names()  # the built-in kinds register on first use
    preds = PROBE_KINDS.get(kind)(acts, positions, targets, split, options, key, progress)
    return score(preds, targets, split)


def _scores(models: dict[str, Run], data: ProbeData, options: ProbeOptions, layers: list[int],
            positions: list[int]) -> dict:
    """(model prefix, probe kind) -> (r2, mse), each (G, L, P)."""
    scores = {}
    bar = tqdm(total=len(models) * (1 + len(options.probes)), desc="probes", unit="stage",
               disable=not options.progress, file=sys.stderr)
    for prefix_name, model in models.items():
        bar.set_postfix(model=prefix_name.rstrip("_") or "trained", stage="capture")
        # (L, N, T, D); the run and its controls (same graph) share one compilation
        acts = model.residuals(data.xs, data.ys, layers, max(positions) + 1,
                               options.capture_batch)
        bar.update()
        for kind in options.probes:
            bar.set_postfix(model=prefix_name.rstrip("_") or "trained", stage=kind)
            fit_options = getattr(options, kind, FitOptions())
            key = jax.random.fold_in(data.fit_key, PROBE_KINDS.stream_id(kind))
            scores[prefix_name, kind] = fit_probes(kind, acts, np.asarray(positions), data.targets,
                                                   data.split, fit_options, key, options.progress)
            bar.update()
    bar.close()
    return scores


def _target_scores(scores: dict, models: dict, options: ProbeOptions) -> dict:
    """probes.json "targets": per target and probe kind the run's R²/MSE, each control's, and the
    selectivity (R² minus the control's)."""
    out: dict = {}
    for g, target in enumerate(options.targets):
        out[target] = entry = {}
        for kind in options.probes:
            r2, mse = scores["", kind]
            entry[kind] = cell = {"r2": finite_or_none(r2[g]), "mse": finite_or_none(mse[g])}
            for prefix_name in models:
                if prefix_name:
                    control_r2, control_mse = scores[prefix_name, kind]
                    cell[f"{prefix_name}r2"] = finite_or_none(control_r2[g])
                    cell[f"{prefix_name}mse"] = finite_or_none(control_mse[g])
                    selectivity = "selectivity" if prefix_name == "control_" else (
                        f"{prefix_name}selectivity")
                    cell[selectivity] = finite_or_none(r2[g] - control_r2[g])
    return out


def probe_run(run: str | Path | Run, options: ProbeOptions | None = None,
              control_run: str | Path | Run | None = None, write: bool = True,
              out_dir: str | Path | None = None, **overrides) -> dict:
    """Probe a run (a run directory or a loaded Run); writes OUT_DIR/probes.json (default: the
    run directory) when `write`, atomically (a run still training is probed undisturbed).

    `overrides` replace fields of `options` (e.g. `probes=("linear",)`). `control_run`: a model
    trained with a fixed w (task.w_prior=fixed), probed on the same prompts; its scores appear
    as fixed_w_r2 / fixed_w_mse / fixed_w_selectivity.
    """
    options = dataclasses.replace(options or ProbeOptions(), **overrides)
    run = _as_run(run)
    layers, positions = _resolve(run, options)
    task, seed = tasks.held_out_task(run.config.task), run.config.seed
    if not family_of(task).has_w and "w" in options.targets:  # relu2nn, decision_tree: no w
        print(f"[icl] probe target 'w' skipped: task.family={task.family!r} has no w",
              file=sys.stderr)
        options = dataclasses.replace(options, targets=tuple(t for t in options.targets
                                                             if t != "w"))
    models = _models(run, options, control_run)
    data = probe_data(run, options.targets, options.n_prompts, options.seed, positions)
    scores = _scores(models, data, options, layers, positions)
    split = data.split
    kinds = token_kinds(run.x_positions, run.y_positions, max(positions) + 1)
    fixed = models.get("fixed_w_")
    result = {
        "schema_version": SCHEMA_VERSION, "run_dir": str(run.run_dir), "step": run.step,
        # recorded for readers of probes.json only; token layout comes from the model
        "encoding": getattr(run.config.model, "encoding", None),
        "d": task.d, "n_points": task.n_points,
        "n_prompts": options.n_prompts, "seed": options.seed,
        "split": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "layers": layers, "positions": positions, "k": [int(k) for k in data.ks],
        "token_kinds": [kinds[t] for t in positions],
        "ridge_lambda": data.ridge_lambda if np.isfinite(data.ridge_lambda) else None,
        "gd_eta": finite_or_none(data.gd_eta),
        "controls": {
            "untrained": {"seed": seed + 1} if options.untrained_control else None,
            "fixed_w": {"run_dir": str(fixed.run_dir), "step": fixed.step} if fixed else None},
        "fit": {"linear_alphas": LINEAR_ALPHAS.tolist(),
                "mlp": dataclasses.asdict(options.mlp),
                "attention": dataclasses.asdict(options.attention),
                "attention_mlp": dataclasses.asdict(options.attention_mlp)},
        "targets": _target_scores(scores, models, options),
    }
    if write:
        write_json(Path(out_dir or run.run_dir) / "probes.json", result)
    return result
