"""Evaluation of a run (or of the baselines alone) against the baselines: the eval.json record.

The app (`icl-eval run_dir=DIR`, evaluate/app.py) writes it to DIR/eval.json.

Without `run_dir` it evaluates the baselines alone for a task config (`task=noisy task.d=10`),
writing `out` (default runs/baselines/eval.json). From a notebook:

    data = evaluate_run(load_run(DIR), n_prompts=2000, settings=("train",))
    print(format_table(data))

Prompts come from `tasks.stream_key(seed, "eval")` (disjoint from training): sub-key 0 the
evaluated prompts, 1 the prompts the GD step sizes are tuned on, 2 the setting transforms,
3 the fresh queries of the implicit fit. The schema of eval.json is in the README.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np
from jax.tree_util import Partial
from tqdm.auto import tqdm

from icl_regression import baselines
from icl_regression.analysis.attention import write_attention
from icl_regression.config import TaskConfig, once
from icl_regression.config.checks import (
    at_least,
    one_of_each,
    require,
    validate_task,
    well_typed,
)
from icl_regression.data import shifts, tasks
from icl_regression.data.families import family_of, sample_family
from icl_regression.evaluate import metrics
from icl_regression.evaluate.eval_json import SCHEMA_VERSION, write_eval_json
from icl_regression.evaluate.scoring import SettingContext, evaluate_setting
from icl_regression.evaluate.selection import json_params
from icl_regression.evaluate.suites import baseline_suite
from icl_regression.run import chunked, forward, load_run
from icl_regression.storage import finite_or_none

__all__ = ["EvalConfig", "EvalKeys", "SCHEMA_VERSION", "baseline_suite", "eval_config_type",
           "evaluate_baselines", "evaluate_predictors", "evaluate_run", "metrics"]


@dataclass(frozen=True)
class EvalKeys:
    """The evaluation's own keys; `EvalConfig` adds each predictor set's knobs (`knn.k`, ...)."""

    run_dir: str = ""  # a run directory; empty: baselines only, for `task`
    task: TaskConfig = field(default_factory=TaskConfig)  # used only without run_dir
    out: str = ""  # eval.json path; empty: OUT_DIR/eval.json or runs/baselines/eval.json
    out_dir: str = ""  # where eval.json / layerwise.json go; empty: run_dir (read-only: set it)
    n_prompts: int = 10_000
    seed: int = -1  # -1: the run's seed (0 without a run); prompts from stream "eval"
    settings: tuple[str, ...] = shifts.SETTINGS
    implicit_settings: tuple[str, ...] = ("train",)  # where ILWD and sensitivity are computed
    implicit_prompts: int = 1000
    implicit_queries: int = 0  # m fresh queries per context; 0: 2d
    gd_steps: int = 1  # η tuned per position on held-out training prompts
    expensive_prompts: int = 1000  # slow baselines (tree, xgboost, nn_gd): the first N prompts
    chunk: int = 2048  # prompts per model call
    progress: bool = True
    layerwise: bool = False  # also write run_dir/layerwise.json (evaluate/layerwise.py)
    plugins: tuple[str, ...] = ()  # modules to import first (icl_regression.plugins)


@functools.cache
def _config_type(sets: tuple[str, ...]) -> type:
    knobs = [(name, spec.knobs, field(default_factory=spec.knobs)) for name in sets
             if (spec := baselines.PREDICTOR_SETS.get(name)).knobs is not None]
    built = dataclasses.make_dataclass("EvalConfig", knobs, bases=(EvalKeys,), frozen=True)
    built.__module__ = __name__
    return built


def eval_config_type() -> type:
    """The frozen dataclass EvalConfig: EvalKeys plus a field per predictor set with knobs,
    built from the registry (a plugin's knobs join by being registered)."""
    return _config_type(baselines.PREDICTOR_SETS.names())


def EvalConfig(**values):  # noqa: N802 (reads as the class it builds)
    """An EvalConfig: `EvalConfig(n_prompts=300, knn=KnnKnobs(k=5))`; knob sets also as dicts."""
    kinds = {f.name: f.type for f in dataclasses.fields(eval_config_type())}
    for name, value in values.items():
        if isinstance(value, dict) and dataclasses.is_dataclass(kinds.get(name)):
            values[name] = kinds[name](**value)
    return eval_config_type()(**values)


@once
def check_config(cfg, task: TaskConfig | None = None):
    """The one place EvalConfig values are checked: a one-line ConfigError naming the key.
    `task`: the evaluated task (default: the run's, or `cfg.task` without a run)."""
    require(not cfg.run_dir or (Path(cfg.run_dir) / "checkpoints").is_dir(), "run_dir",
            cfg.run_dir, "it holds no checkpoints/ (a trained run directory, or empty for the "
            "baselines alone)")
    one_of_each(cfg.settings, shifts.SHIFTS.names(), "settings")
    one_of_each(cfg.implicit_settings, shifts.SHIFTS.names(), "implicit_settings", empty_ok=True)
    at_least(cfg, "", 1, "n_prompts", "implicit_prompts", "gd_steps", "chunk",
             "expensive_prompts")
    at_least(cfg, "", 0, "implicit_queries")
    require(cfg.seed >= -1, "seed", cfg.seed, "must be >= 0, or -1 for the run's seed")
    for name, spec in baselines.PREDICTOR_SETS.items():
        if spec.check is not None and getattr(cfg, name, None) is not None:
            spec.check(getattr(cfg, name))
    require(not cfg.layerwise or bool(cfg.run_dir), "layerwise", cfg.layerwise,
            "needs run_dir (it reads a model)")
    if task is None and cfg.run_dir:
        from icl_regression.run import load_config

        task = load_config(cfg.run_dir).task
    if task is None:
        well_typed(cfg.task, "task.")
        validate_task(cfg.task)
    d = (task or cfg.task).d
    require(cfg.implicit_queries == 0 or cfg.implicit_queries >= 2 * d, "implicit_queries",
            cfg.implicit_queries, f"must be 0 (= 2d) or >= 2d = {2 * d}")
    return cfg


def _predictor_funcs(task, seed, cfg, family, gd_eta):
    suite = baseline_suite(task, seed, cfg, gd_eta)
    funcs = {name: baselines.get_baseline(base, **params) for name, (base, params) in suite.items()}
    weight_funcs = {} if not family.has_w else {
        name: baselines.get_weights(base, **params) for name, (base, params) in suite.items()
        if baselines.BASELINES.get(base).linear and base != "zero"}
    expensive = {name for name, (base, _) in suite.items()
                 if baselines.BASELINES.get(base).expensive}
    return suite, funcs, weight_funcs, expensive


def evaluate_predictors(task: TaskConfig, seed: int, cfg, model=None,
                        query_model=None) -> dict:
    """The whole evaluation of `model(xs, ys) -> preds` (or of the baselines only: None).

    `model` is a pure JAX function; a `jax.tree_util.Partial` carrying the parameters keeps
    them as jit arguments instead of baked-in constants. `query_model` (`Run.query_function`),
    where given, computes the implicit fit's query predictions in one pass. The task's family
    picks the baselines, the settings that apply (OOD shifts need y = w·x + noise), accuracy
    and per-component scores.
    """
    check_config(cfg, task)
    family = family_of(task)
    if model is not None and not isinstance(model, Partial):
        model = Partial(model)
    key = tasks.stream_key(seed, "eval")
    xs, ys, ws, component = _sample(jax.random.fold_in(key, 0), task, cfg.n_prompts, seed)
    tune_xs, tune_ys, _, _ = _sample(jax.random.fold_in(key, 1), task, cfg.n_prompts, seed)
    gd_eta = baselines.tune_gd_eta(tune_xs, tune_ys, cfg.gd_steps)
    suite, funcs, weight_funcs, expensive = _predictor_funcs(task, seed, cfg, family, gd_eta)
    few = min(cfg.expensive_prompts, cfg.n_prompts)

    def predict_all(xs, ys):  # every predictor on one setting's prompts: name -> (B, n)
        preds = {"model": chunked(functools.partial(forward, model), (xs, ys), cfg.chunk)
                 } if model is not None else {}
        preds.update({name: f(xs[:few], ys[:few]) if name in expensive else f(xs, ys)
                      for name, f in funcs.items()})
        return {name: np.asarray(p) for name, p in preds.items()}

    m = cfg.implicit_queries or 2 * task.d
    # Fresh queries for the implicit fit: x points of the tuning prompts (held out, training
    # distribution, independent of the evaluated prompts), m per context.
    count = min(cfg.implicit_prompts, cfg.n_prompts, cfg.n_prompts * task.n_points // m)
    queries = np.asarray(tune_xs).reshape(-1, task.d)[:count * m].reshape(count, m, task.d)
    skipped = {} if family.linear_labels else {
        name: f"task.family={task.family!r}: labels are not w·x + noise"
        for name in cfg.settings if name != "train"}
    out = {"schema_version": SCHEMA_VERSION, "task": dataclasses.asdict(task), "seed": seed,
           "n_prompts": cfg.n_prompts, "implicit_prompts": count if family.has_w else 0,
           "implicit_queries": m,
           "predictors": {name: {"baseline": base, "params": json_params(params),
                                 **({"n_prompts": few} if name in expensive else {})}
                          for name, (base, params) in suite.items()},
           "gd_eta": {"steps": cfg.gd_steps, "k": list(range(task.n_points)),
                      "eta": finite_or_none(gd_eta)},
           "family": {"name": task.family, "has_w": family.has_w,
                      "classification": family.classification,
                      "components": list(family.components(task)), "skipped_settings": skipped},
           "settings": {}}
    ctx = SettingContext(task, family, cfg, model, predict_all,
                   lambda xs, ys: {name: f(xs, ys) for name, f in weight_funcs.items()},
                   queries, np.asarray(component), query_model)
    base = shifts.Prompts(np.asarray(xs), np.asarray(ys), None if ws is None else np.asarray(ws))
    settings = [name for name in cfg.settings if name not in skipped]
    bar = tqdm(settings, desc="evaluate", disable=not cfg.progress, file=sys.stderr)
    for name in bar:
        bar.set_postfix(setting=name)
        prompts = shifts.make_setting(name, jax.random.fold_in(key, 2), base, task)
        out["settings"][name] = evaluate_setting(name, prompts, ctx)
    return out


_sample = jax.jit(sample_family, static_argnums=(1, 2, 3))


def evaluate_run(run, cfg=None, **overrides) -> dict:
    """Model of a run vs the baselines; `overrides` are EvalConfig keys.

    `run` is a loaded run (`load_run`), or a run directory: then it is loaded and the result is
    also written to DIR/eval.json (what `icl-figures compute_missing=true` relies on), with the
    attention maps of one held-out prompt in DIR/attention.npz for the figures (both in
    `out_dir` instead, when given; the maps only for models with attention, `has_attention`
    of the model contract).
    """
    run_dir = None if hasattr(run, "model") else Path(run)
    if run_dir is not None:
        run = load_run(run_dir)
    cfg = dataclasses.replace(cfg or EvalConfig(), **overrides)
    seed = run.config.seed if cfg.seed < 0 else cfg.seed
    model = run.function()  # the parameters stay jit arguments
    out = {"run_dir": str(run.run_dir), "step": int(run.step),
           **evaluate_predictors(tasks.held_out_task(run.config.task), seed, cfg, model,
                                 run.query_function())}
    if run_dir is not None:
        write_eval_json(Path(cfg.out_dir or run_dir) / "eval.json", out)
        if run.has_attention:
            write_attention(run, out_dir=cfg.out_dir or None)
    return out


def evaluate_baselines(task: TaskConfig, cfg=None, **overrides) -> dict:
    """Baselines alone for a task (no model): error curves only."""
    cfg = dataclasses.replace(cfg or EvalConfig(), task=task, **overrides)
    out = evaluate_predictors(task, max(cfg.seed, 0), cfg)
    return {"run_dir": None, "step": None, **out}
