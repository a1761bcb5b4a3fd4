"""Probes: `python -m icl_regression.probes run_dir=DIR [options]` or `icl-probe run_dir=DIR`.

Where does a trained transformer hold the weight vector it implicitly fits? `probe_run` loads the
run, draws held-out prompts from the run's `probe` random stream (disjoint from training and
evaluation), captures the residual stream after the embedding (layer 0) and after every block
(layer l) at the chosen token positions, and fits probes (probe_models.py) for the targets of the
prefix each token has seen (probe_targets.py). The same probes run on an untrained model of the
same architecture and, when given, on a model trained with one fixed w: the controls. Results go
to `DIR/probes.json` (schema in the README, section "Probes"), written atomically.
Options: conf/probes.yaml; `ProbeOptions` is the same without Hydra.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from icl_regression.baselines import tune_gd_eta
from icl_regression.config import ConfigError
from icl_regression.data import tasks
from icl_regression.probes.families import LINEAR_ALPHAS, PROBES, FitOptions, Split, fit_probes
from icl_regression.probes.targets import (
    TARGETS,
    all_prefix_targets,
    prefix_lengths,
    sample_probe_prompts,
    targets_at_positions,
    token_kinds,
)
from icl_regression.run import Run, load_run

SCHEMA_VERSION = 1
POSITION_SETS = ("x", "y")  # positions=x: every query token; positions=y: every y token


@dataclass(frozen=True)
class ProbeOptions:
    targets: tuple[str, ...] = TARGETS
    probes: tuple[str, ...] = PROBES
    layers: tuple[int, ...] | None = None  # 0 = after the embedding, l = after block l; None: all
    positions: tuple[int, ...] | str | None = None  # token indices, "x" or "y"; None: every token
    n_prompts: int = 4096  # held-out prompts, split 60/20/20 into train/validation/test
    seed: int = 0  # picks the prompts (within the probe stream), the split and probe inits
    untrained_control: bool = True
    progress: bool = True
    capture_batch: int = 1024  # prompts per forward pass
    mlp: FitOptions = field(default_factory=FitOptions)
    attention: FitOptions = field(default_factory=FitOptions)


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
    out["probes"] = _names(values.get("probes", PROBES), PROBES, "probes")
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
    for key in ("mlp", "attention"):
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


@partial(jax.jit, static_argnames=("graphdef", "layers", "n_tokens"))
def _residuals(graphdef, state, xs, ys, layers, n_tokens):
    residuals = nnx.merge(graphdef, state).intermediates(xs, ys)["residuals"]  # (L+1, B, T, D)
    return residuals[np.asarray(layers), :, :n_tokens]


def capture(run: Run, xs: jax.Array, ys: jax.Array, layers: Sequence[int], n_tokens: int,
            batch: int) -> np.ndarray:
    """Residual stream at the chosen layers, tokens 0..n_tokens-1: (L, N, T, D) float32.

    Calls the model's `intermediates` (what `run.intermediates` wraps) through one jitted
    function keyed on the model's graph, so the probed run and its controls (same graph) share
    a compilation; the last chunk is padded to the chunk size for the same reason.
    """
    graphdef, state = nnx.split(run.model)
    n_prompts, batch = xs.shape[0], min(batch, xs.shape[0])
    chunks = []
    for start in range(0, n_prompts, batch):
        pad = max(start + batch - n_prompts, 0)
        xs_chunk = jnp.pad(xs[start:start + batch], ((0, pad), (0, 0), (0, 0)))
        ys_chunk = jnp.pad(ys[start:start + batch], ((0, pad), (0, 0)))
        chunk = _residuals(graphdef, state, xs_chunk, ys_chunk, tuple(layers), n_tokens)
        chunks.append(np.asarray(chunk, np.float32)[:, :batch - pad])
    return np.concatenate(chunks, axis=1)


def _jsonable(values: np.ndarray) -> list:
    """Nested lists; NaN (undefined, e.g. R² of a constant target) becomes null."""
    return [_jsonable(v) for v in values] if values.ndim else (
        None if not np.isfinite(values) else float(values))


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
    task, seed = tasks.held_out_task(run.config.task), run.config.seed

    key = jax.random.fold_in(tasks.stream_key(seed, "probe"), options.seed)
    prompt_key, fit_key = jax.random.split(key)
    xs, ys, ws, eta_xs, eta_ys = sample_probe_prompts(prompt_key, task, options.n_prompts, seed)
    if ws is None and "w" in options.targets:  # relu2nn, decision_tree: no weight vector
        print(f"[icl] probe target 'w' skipped: task.family={task.family!r} has no w",
              file=sys.stderr)
        options = dataclasses.replace(options, targets=tuple(t for t in options.targets
                                                             if t != "w"))
    n_tokens = max(positions) + 1
    k_of_token = prefix_lengths(run.x_positions, run.y_positions, n_tokens)  # (T,)
    ks = k_of_token[positions]  # (P,)
    ridge_lambda = tasks.bayes_ridge_lambda(task)
    gd_eta = np.asarray(tune_gd_eta(eta_xs, eta_ys))  # (n + 1,): η*_k for k = 0..n
    prefix = all_prefix_targets(xs, ys, ws, options.targets, ridge_lambda, gd_eta)
    targets = targets_at_positions(prefix, ks, options.targets)  # (G, N, P, d)
    split = Split.random((seed, options.seed), options.n_prompts)

    scores = {}
    bar = tqdm(total=len(models) * (1 + len(options.probes)), desc="probes", unit="stage",
               disable=not options.progress, file=sys.stderr)
    for prefix_name, model in models.items():
        bar.set_postfix(model=prefix_name.rstrip("_") or "trained", stage="capture")
        acts = capture(model, xs, ys, layers, n_tokens, options.capture_batch)  # (L, N, T, D)
        bar.update()
        for family in options.probes:
            bar.set_postfix(model=prefix_name.rstrip("_") or "trained", stage=family)
            fit_options = getattr(options, family, FitOptions())
            scores[prefix_name, family] = fit_probes(
                family, acts, np.asarray(positions), targets, split, fit_options,
                jax.random.fold_in(fit_key, PROBES.index(family)), options.progress)
            bar.update()
    bar.close()

    result = {
        "schema_version": SCHEMA_VERSION, "run_dir": str(run.run_dir), "step": run.step,
        "encoding": run.config.model.encoding, "d": task.d, "n_points": task.n_points,
        "n_prompts": options.n_prompts, "seed": options.seed,
        "split": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "layers": layers, "positions": positions, "k": [int(k) for k in ks],
        "token_kinds": [token_kinds(run.x_positions, run.y_positions, n_tokens)[t]
                        for t in positions],
        "ridge_lambda": ridge_lambda if np.isfinite(ridge_lambda) else None,
        "gd_eta": _jsonable(gd_eta),
        "controls": {
            "untrained": {"seed": seed + 1} if options.untrained_control else None,
            "fixed_w": ({"run_dir": str(models["fixed_w_"].run_dir),
                         "step": models["fixed_w_"].step} if "fixed_w_" in models else None)},
        "fit": {"linear_alphas": LINEAR_ALPHAS.tolist(),
                "mlp": dataclasses.asdict(options.mlp),
                "attention": dataclasses.asdict(options.attention)},
        "targets": {},
    }
    for g, target in enumerate(options.targets):
        result["targets"][target] = entry = {}
        for family in options.probes:
            r2, mse = scores["", family]
            entry[family] = out = {"r2": _jsonable(r2[g]), "mse": _jsonable(mse[g])}
            for prefix_name in models:
                if prefix_name:
                    control_r2, control_mse = scores[prefix_name, family]
                    out[f"{prefix_name}r2"] = _jsonable(control_r2[g])
                    out[f"{prefix_name}mse"] = _jsonable(control_mse[g])
                    selectivity = "selectivity" if prefix_name == "control_" else (
                        f"{prefix_name}selectivity")
                    out[selectivity] = _jsonable(r2[g] - control_r2[g])
    if write:
        from icl_regression.figures.style import write_atomically

        write_atomically(run.run_dir / "probes.json",
                         (json.dumps(result, indent=1) + "\n").encode())
    return result


def _column_for_k(result: dict, k: int) -> int | None:
    """Index of the probed position with k pairs seen, preferring a query (x) token."""
    columns = [i for i, kk in enumerate(result["k"]) if kk == k]
    queries = [i for i in columns if result["token_kinds"][i] == "x"]
    return (queries or columns or [None])[0]


def best_layers(result: dict, ks: Sequence[int], probe: str = "linear") -> dict:
    """{target: {k: {layer, position, r2, control_r2, fixed_w_r2} | None}} from probes.json:
    the layer with the highest held-out R² at the token that has seen k pairs."""
    as_float = lambda rows, col: np.array([np.nan if r[col] is None else r[col] for r in rows])
    summary: dict = {}
    for target, families in result["targets"].items():
        scores = families.get(probe)
        summary[target] = {}
        for k in ks:
            col = _column_for_k(result, k)
            r2 = as_float(scores["r2"], col) if scores and col is not None else np.array([np.nan])
            if np.all(np.isnan(r2)):
                summary[target][k] = None
                continue
            best = int(np.nanargmax(r2))
            summary[target][k] = {"layer": result["layers"][best],
                                  "position": result["positions"][col], "r2": float(r2[best])}
            for control in ("control_r2", "fixed_w_r2"):
                if control in scores:
                    summary[target][k][control] = float(as_float(scores[control], col)[best])
    return summary


def format_probe_summary(result: dict, d: int | None = None, probe: str = "linear") -> str:
    """A plain-text table: per target, the best layer (highest held-out R²) at k = d and k = 2d,
    its R², and the controls' R² at that layer."""
    d = result["d"] if d is None else d
    lines = [f"{probe} probes: best layer per target (0 = embedding), held-out R²",
             f"{'target':8} {'k':>3} {'layer':>5} {'trained':>8} {'untrained':>9} {'fixed-w':>8}"]
    cell = lambda v: "-" if v is None or not np.isfinite(v) else f"{v:.3f}"
    for target, per_k in best_layers(result, (d, 2 * d), probe).items():
        for k, entry in per_k.items():
            if entry is None:
                lines.append(f"{target:8} {k:>3}   (no position or constant target)")
                continue
            lines.append(f"{target:8} {k:>3} {entry['layer']:>5} {cell(entry['r2']):>8} "
                         f"{cell(entry.get('control_r2')):>9} {cell(entry.get('fixed_w_r2')):>8}")
    return "\n".join(lines)


def _hydra_main():
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from icl_regression.cli import CONF_DIR

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
        except (ConfigError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        for probe in options.probes:
            print(format_probe_summary(result, probe=probe))
        print(f"wrote {Path(run_dir) / 'probes.json'}")

    return probes_app


def main() -> None:
    _hydra_main()()


if __name__ == "__main__":
    main()
