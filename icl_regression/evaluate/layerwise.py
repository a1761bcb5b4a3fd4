"""Layer by layer: a prediction read out of every layer of a run, matched to iterations.

`icl-eval run_dir=DIR layerwise=true` (or `layerwise_run(DIR)`) writes DIR/layerwise.json.
For held-out prompts of each setting (training distribution, `skewed_cov`, `kappa_100`) and
every layer l (0 = after the embedding, l = after block l) at the query tokens:

* lens: the model's own read-out (`lens` of the model contract, models/contract.py; a GPT's
  final LayerNorm + linear map) applied to layer l's hidden state at the x tokens (at the last
  layer this is the model's prediction);
* refit: a linear read-out of y refitted per (layer, position) on the setting's prompts
  (closed-form ridge with λ picked on validation: the linear probe of `probes.families`),
  scored on the test split, where everything below is computed;
* matching (`evaluate.matching`): SPD between the refit prediction and each iterative
  algorithm (newton, gd, cg, online_gd) after t iterations, and the best-matching t.

Prompts come from `tasks.stream_key(seed, "eval")` sub-keys 10 (evaluated), 11 (η tuning) and
12 (setting transforms), disjoint from eval.json's sub-keys 0..3. Schema: README "Layer by layer".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from icl_regression.data import shifts, tasks
from icl_regression.evaluate.matching import match_algorithms, sq_error_curve
from icl_regression.probes.kinds import Split, linear_probe
from icl_regression.run import chunked
from icl_regression.storage import finite_or_none, write_json

SCHEMA_VERSION = 1
SETTINGS = ("train", "skewed_cov", "kappa_100")
STREAM_OFFSET = 10  # sub-keys of the eval stream used here (eval.json uses 0..3)


@dataclass(frozen=True)
class LayerwiseOptions:
    n_prompts: int = 5000  # per setting, split 60/20/20 (refit train / validation / test)
    settings: tuple[str, ...] = SETTINGS
    algorithms: tuple[str, ...] = ("newton", "gd", "cg", "online_gd")
    seed: int = -1  # -1: the run's seed
    chunk: int = 1024  # prompts per forward pass


def layer_readouts(run, xs: np.ndarray, ys: np.ndarray, chunk: int = 1024):
    """Residual stream at the query tokens and its lens predictions, every layer:
    (L+1, B, n, D) float32 and (L+1, B, n)."""
    x_tokens = np.asarray(run.x_positions)
    at_x = lambda xs, ys: run.intermediates(xs, ys)["residuals"][:, :, x_tokens]  # (L+1, b, n, D)
    hidden = chunked(at_x, (xs, ys), chunk, axis=1, host=True)  # Run's one chunker
    return np.asarray(hidden, np.float32), run.lens(hidden)  # (L+1, B, n, D), (L+1, B, n)


def refit_readout(hidden: np.ndarray, ys: np.ndarray, split: Split) -> np.ndarray:
    """Linear read-out of y per (layer, position), fitted on split.train (λ on split.val):
    test-split predictions (L+1, N_test, n)."""
    n = ys.shape[1]
    targets = np.asarray(ys, np.float64)[None, :, :, None]  # (1, N, n, 1): G = 1, d = 1
    preds = linear_probe(hidden, np.arange(n), targets, split)  # (1, L+1, n, N_test, 1)
    return np.swapaxes(preds[0, ..., 0], 1, 2)


def setting_prompts(name: str, task, n_prompts: int, seed: int, sub: int) -> shifts.Prompts:
    """Held-out prompts of setting `name`; `sub` picks the draw (evaluated or η tuning)."""
    key = tasks.stream_key(seed, "eval")
    xs, ys, ws = tasks.sample_prompts(jax.random.fold_in(key, STREAM_OFFSET + sub), task,
                                      n_prompts, seed)
    base = shifts.Prompts(np.asarray(xs), np.asarray(ys), np.asarray(ws))
    transform_key = jax.random.fold_in(key, STREAM_OFFSET + 2 + sub)
    return shifts.make_setting(name, transform_key, base, task)


def evaluate_setting(run, name: str, task, seed: int, options: LayerwiseOptions) -> dict:
    """Read-out errors and the matching of one setting (test split of its prompts)."""
    prompts = setting_prompts(name, task, options.n_prompts, seed, 0)
    tuning = setting_prompts(name, task, options.n_prompts, seed, 1)
    split = Split.random((seed, STREAM_OFFSET), options.n_prompts)
    hidden, lens = layer_readouts(run, prompts.xs, prompts.ys, options.chunk)
    refit = refit_readout(hidden, prompts.ys, split)  # (L+1, N_test, n)
    xs, ys = prompts.xs[split.test], prompts.ys[split.test]
    normaliser = float(np.mean(np.asarray(ys, np.float64) ** 2))
    readout_error = {"lens": sq_error_curve(lens[:, split.test], ys, normaliser),
                     "refit": sq_error_curve(refit, ys, normaliser)}
    match = match_algorithms(refit, xs, ys, (tuning.xs, tuning.ys), options.algorithms,
                             normaliser)
    return {"description": shifts.SHIFTS.get(name).description, "normaliser": normaliser,
            "readout_error": {r: finite_or_none(e) for r, e in readout_error.items()},
            "match": match}


def layerwise_run(run, options: LayerwiseOptions | None = None, write: bool = True,
                  out_dir: str | Path | None = None, **overrides) -> dict:
    """The whole layer-by-layer analysis of a run (directory or loaded Run); written to
    OUT_DIR/layerwise.json (default: the run directory) when `write`."""
    from icl_regression.run import load_run

    options = dataclasses.replace(options or LayerwiseOptions(), **overrides)
    run = run if hasattr(run, "model") else load_run(run)
    for name in options.settings:
        if name not in shifts.SHIFTS or name in shifts.QUERY_SETTINGS:
            raise ValueError(f"layerwise setting {name!r} is not allowed; a whole-prompt "
                             f"setting of {', '.join(shifts.SHIFTS.names())}")
    task = tasks.held_out_task(run.config.task)
    seed = run.config.seed if options.seed < 0 else options.seed
    per_setting = {name: evaluate_setting(run, name, task, seed, options)
                   for name in options.settings}
    first = per_setting[options.settings[0]]
    split = Split.random((seed, STREAM_OFFSET), options.n_prompts)
    out = {"schema_version": SCHEMA_VERSION, "run_dir": str(run.run_dir), "step": int(run.step),
           "task": dataclasses.asdict(task), "seed": seed, "n_prompts": options.n_prompts,
           "split": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
           "layers": list(range(run.n_layers + 1)),
           "k": list(range(task.n_points)), "setting": options.settings[0],
           "match_readout": "refit", "readout_error": first["readout_error"],
           "match": first["match"], "settings": per_setting}
    validate_layerwise_json(out)
    if write:
        write_json(Path(out_dir or run.run_dir) / "layerwise.json", out)
    return out


def _check(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise ValueError(f"layerwise.json {where}: {what}")


def _grid(value, shape: tuple[int, ...], where: str) -> None:
    """Nested lists of numbers/null with exactly `shape`."""
    array = np.array(value, dtype=object)
    _check(array.shape == shape, where, f"must be nested lists of shape {list(shape)}")
    _check(all(v is None or isinstance(v, (int, float)) for v in array.ravel()), where,
           "entries must be numbers or null")


def validate_layerwise_json(data: dict) -> dict:
    """Raise ValueError naming the first key that breaks the documented schema."""
    for key in ("schema_version", "layers", "k", "readout_error", "match", "settings"):
        _check(key in data, key, "missing")
    n_layers, n_k = len(data["layers"]), len(data["k"])
    for name, block in [("", data)] + [(f"settings.{s}.", b) for s, b in data["settings"].items()]:
        for readout in ("lens", "refit"):
            _grid(block["readout_error"][readout], (n_layers, n_k),
                  f"{name}readout_error.{readout}")
        for algorithm, entry in block["match"].items():
            where, n_it = f"{name}match.{algorithm}", len(entry["iterations"])
            _grid(entry["spd"], (n_layers, n_it, n_k), f"{where}.spd")
            _grid(entry["best_iteration"], (n_layers, n_k), f"{where}.best_iteration")
            _grid(entry["error"], (n_it, n_k), f"{where}.error")
    return data


def read_layerwise_json(path: str | Path) -> dict:
    from icl_regression.integrity import read_json

    return validate_layerwise_json(read_json(path))


def format_layerwise_table(data: dict, setting: str | None = None) -> str:
    """Markdown: per layer, the read-out errors at k = 2d − 1 (or the last k) and the best
    Newton / GD iteration (SPD averaged over k ≥ 1) with that SPD."""
    block = data["settings"][setting or data["setting"]]
    k = min(2 * data["task"]["d"] - 1, len(data["k"]) - 1)
    algorithms = [a for a in ("newton", "gd", "cg", "online_gd") if a in block["match"]]
    head = "| layer | lens err | refit err | " + " | ".join(
        f"best {a} t (SPD)" for a in algorithms) + " |"
    lines = [f"setting {setting or data['setting']!r}: errors at k = {k}; best t on the SPD "
             "averaged over k ≥ 1", "", head, "|---" * (3 + len(algorithms)) + "|"]
    fmt = lambda v: "—" if v is None else f"{v:.3f}"
    for i, layer in enumerate(data["layers"]):
        cells = [str(layer), fmt(block["readout_error"]["lens"][i][k]),
                 fmt(block["readout_error"]["refit"][i][k])]
        for a in algorithms:
            entry = block["match"][a]
            t = entry["best_iteration_by_layer"][i]
            spd = np.array(entry["spd"][i], dtype=float)[entry["iterations"].index(t), 1:]
            cells.append(f"{t} ({np.nanmean(spd):.3f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_layerwise_app(run_dir: str, seed: int = -1, out_dir: str | None = None) -> dict:
    """What `icl-eval run_dir=DIR layerwise=true` adds: layerwise.json (in out_dir, default
    the run directory) and its tables."""
    import sys
    import time

    start = time.perf_counter()
    data = layerwise_run(run_dir, seed=seed, out_dir=out_dir)
    for name in data["settings"]:
        print(format_layerwise_table(data, name) + "\n")
    print(f"[icl] wrote {Path(out_dir or run_dir) / 'layerwise.json'} "
          f"({time.perf_counter() - start:.0f}s)", file=sys.stderr)
    return data
