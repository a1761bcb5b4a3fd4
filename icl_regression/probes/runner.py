"""Probes: `python -m icl_regression.probes run_dir=DIR [options]` or `icl-probe run_dir=DIR`.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from icl_regression.config import ConfigError
from icl_regression.data import tasks
from icl_regression.probes.families import (
    DEFAULT_PROBES,
    LINEAR_ALPHAS,
    PROBES,
    FitOptions,
    fit_probes,
)
from icl_regression.probes.summary import best_layers, format_probe_summary
from icl_regression.probes.targets import TARGETS, ProbeData, probe_data, token_kinds
from icl_regression.run import Run, load_run
from icl_regression.storage import WRITE_WAIT_S, finite_or_none, run_lock, write_json

__all__ = ["ProbeOptions", "best_layers", "format_probe_summary", "probe_options", "probe_run"]
SCHEMA_VERSION = 1
POSITION_SETS = ("x", "y")  # positions=x: every query token; positions=y: every y token


@dataclass(frozen=True)
class ProbeOptions:
    targets: tuple[str, ...] = TARGETS
    probes: tuple[str, ...] = DEFAULT_PROBES
    layers: tuple[int, ...] | None = None  # 0 = after the embedding, l = after block l; None: all
    positions: tuple[int, ...] | str | None = None  # token indices, "x" or "y"; None: every token
    n_prompts: int = 4096  # held-out prompts, split 60/20/20 into train/validation/test
    seed: int = 0  # picks the prompts (within the probe stream), the split and probe inits
    untrained_control: bool = True
    progress: bool = True
    capture_batch: int = 1024  # prompts per forward pass
    mlp: FitOptions = field(default_factory=FitOptions)
    attention: FitOptions = field(default_factory=FitOptions)
    attention_mlp: FitOptions = field(default_factory=FitOptions)


def _names(value, allowed: Sequence[str], key: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value or ())
    bad = [n for n in names if n not in allowed]
    if not names or bad:
        raise ConfigError(f"{key}={bad[0] if bad else list(names)!r} is not allowed; "
                          f"choose from {', '.join(allowed)}")
    return names


def _fit_options(values: Mapping, key: str) -> FitOptions:
    names = [f.name for f in dataclasses.fields(FitOptions)]
    for name, value in values.items():
        if name not in names:
            raise ConfigError(f"{key}.{name}: unknown key; allowed: {', '.join(names)}")
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise ConfigError(f"{key}.{name}={value!r} is not allowed; must be a number > 0")
    ints = {n: int(v) for n, v in values.items() if n != "learning_rate"}
    return FitOptions(**{**values, **ints})


def probe_options(values: Mapping) -> ProbeOptions:
    """Plain dict (e.g. the composed Hydra config minus run_dir) -> checked ProbeOptions."""
    allowed = [f.name for f in dataclasses.fields(ProbeOptions)]
    for key in values:
        if key not in allowed:
            raise ConfigError(f"{key}: unknown key; allowed: {', '.join(allowed)}")
    out = dict(values)
    out["targets"] = _names(values.get("targets", TARGETS), TARGETS, "targets")
    out["probes"] = _names(values.get("probes", DEFAULT_PROBES), PROBES, "probes")
    for key in ("layers", "positions"):
        value = values.get(key)
        if isinstance(value, str) and key == "positions":
            _names(value, POSITION_SETS, "positions")
        elif value is not None:
            value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            if not value or not all(isinstance(v, int) and v >= 0 for v in value):
                raise ConfigError(f"{key}={list(value)!r} is not allowed; a list of token/layer "
                                  f"indices >= 0, or null for all" + (
                                      ", or x / y" if key == "positions" else ""))
            out[key] = tuple(sorted(set(value)))
    if int(values.get("n_prompts", 4096)) < 50:
        raise ConfigError(f"n_prompts={values['n_prompts']!r} is not allowed; must be >= 50")
    if int(values.get("capture_batch", 1024)) < 1:
        raise ConfigError(f"capture_batch={values['capture_batch']!r} is not allowed; must be >= 1")
    for key in ("mlp", "attention", "attention_mlp"):
        out[key] = _fit_options(dict(values.get(key) or {}), key)
    return ProbeOptions(**out)


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
            raise ConfigError(f"positions=y is not allowed; encoding "
                              f"{run.config.model.encoding!r} has no y tokens")
        positions = [int(t) for t in run.y_positions]
    else:
        positions = list(options.positions or range(n_tokens))
    if max(positions) >= n_tokens:
        raise ConfigError(f"positions={positions} is not allowed; tokens are 0..{n_tokens - 1}")
    return layers, positions


def _depth_and_length(run: Run) -> tuple[int, int]:
    from icl_regression.data.tokens import seq_len

    model = run.config.model
    return model.n_layer, seq_len(model.encoding, run.config.task.n_points)


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


def _scores(models: dict[str, Run], data: ProbeData, options: ProbeOptions, layers: list[int],
            positions: list[int]) -> dict:
    """(model prefix, probe family) -> (r2, mse), each (G, L, P)."""
    scores = {}
    bar = tqdm(total=len(models) * (1 + len(options.probes)), desc="probes", unit="stage",
               disable=not options.progress, file=sys.stderr)
    for prefix_name, model in models.items():
        bar.set_postfix(model=prefix_name.rstrip("_") or "trained", stage="capture")
        # (L, N, T, D); the run and its controls (same graph) share one compilation
        acts = model.residuals(data.xs, data.ys, layers, max(positions) + 1,
                               options.capture_batch)
        bar.update()
        for family in options.probes:
            bar.set_postfix(model=prefix_name.rstrip("_") or "trained", stage=family)
            fit_options = getattr(options, family, FitOptions())
            scores[prefix_name, family] = fit_probes(
                family, acts, np.asarray(positions), data.targets, data.split, fit_options,
                jax.random.fold_in(data.fit_key, PROBES.index(family)), options.progress)
            bar.update()
    bar.close()
    return scores


def _target_scores(scores: dict, models: dict, options: ProbeOptions) -> dict:
    """probes.json "targets": per target and family the run's R²/MSE, each control's, and the
    selectivity (R² minus the control's)."""
    out: dict = {}
    for g, target in enumerate(options.targets):
        out[target] = entry = {}
        for family in options.probes:
            r2, mse = scores["", family]
            entry[family] = cell = {"r2": finite_or_none(r2[g]), "mse": finite_or_none(mse[g])}
            for prefix_name in models:
                if prefix_name:
                    control_r2, control_mse = scores[prefix_name, family]
                    cell[f"{prefix_name}r2"] = finite_or_none(control_r2[g])
                    cell[f"{prefix_name}mse"] = finite_or_none(control_mse[g])
                    selectivity = "selectivity" if prefix_name == "control_" else (
                        f"{prefix_name}selectivity")
                    cell[selectivity] = finite_or_none(r2[g] - control_r2[g])
    return out


def probe_run(run: str | Path | Run, options: ProbeOptions | None = None,
              control_run: str | Path | Run | None = None, write: bool = True,
              **overrides) -> dict:
    """Probe a run (a run directory or a loaded Run); writes RUN/probes.json when `write`.

    `overrides` replace fields of `options` (e.g. `probes=("linear",)`). `control_run`: a model
    trained with a fixed w (task.w_prior=fixed), probed on the same prompts; its scores appear
    as fixed_w_r2 / fixed_w_mse / fixed_w_selectivity.
    """
    options = dataclasses.replace(options or ProbeOptions(), **overrides)
    run = _as_run(run)
    layers, positions = _resolve(run, options)
    models = _models(run, options, control_run)
    data = probe_data(run, options.targets, options.n_prompts, options.seed, positions)
    scores = _scores(models, data, options, layers, positions)
    task, seed, split = tasks.held_out_task(run.config.task), run.config.seed, data.split
    kinds = token_kinds(run.x_positions, run.y_positions, max(positions) + 1)
    fixed = models.get("fixed_w_")
    result = {
        "schema_version": SCHEMA_VERSION, "run_dir": str(run.run_dir), "step": run.step,
        "encoding": run.config.model.encoding, "d": task.d, "n_points": task.n_points,
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
        with run_lock(run.run_dir, wait_s=WRITE_WAIT_S):  # not while training writes the run
            write_json(run.run_dir / "probes.json", result)
    return result


def _hydra_main():
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from icl_regression.cli import CONF_DIR
    from icl_regression.storage import RunDirLocked

    @hydra.main(version_base=None, config_path=CONF_DIR, config_name="probes")
    def probes_app(cfg: DictConfig) -> None:
        values = OmegaConf.to_container(cfg, resolve=True)
        values.pop("hydra", None)
        run_dir, control_run_dir = values.pop("run_dir", None), values.pop("control_run_dir", None)
        try:
            if not run_dir:
                raise ConfigError("run_dir is required: icl-probe run_dir=DIR")
            options = probe_options(values)
            for key, path in (("run_dir", run_dir), ("control_run_dir", control_run_dir)):
                if path is not None and not (Path(path) / "checkpoints").is_dir():
                    raise ConfigError(f"{key}={path!r} is not allowed; no checkpoints/ there "
                                      "(a trained run directory is needed)")
            result = probe_run(run_dir, options, control_run_dir)
        except (ConfigError, FileNotFoundError, RunDirLocked) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        for probe in options.probes:
            print(format_probe_summary(result, probe=probe))
        if control_run_dir is not None:
            from icl_regression.probes.study import format_study

            print(format_study(result))
        print(f"wrote {Path(run_dir) / 'probes.json'}")

    return probes_app


def main() -> None:
    _hydra_main()()


if __name__ == "__main__":
    main()
