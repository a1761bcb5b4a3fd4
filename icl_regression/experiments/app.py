"""`python -m icl_regression.experiments name=<experiment> runs=<dirs or glob>`: an experiment's
numbers from trained runs, and its figure.

For every run matched by `runs` (searched recursively, multirun folders included) the
experiment's loop (one module per experiment, registry.py) writes RUN/experiments/<name>.json
atomically; a stored file computed with the same options at the same step is reused unless
`recompute=true`. The figure (its registration's) goes to `out/<name>.<fmt>` with the
records behind it in `out/<name>.json`, and, for single-run experiments, to each run's
`plots/experiment_<name>.<fmt>`. Runs that cannot serve the experiment are listed with the
reason. Options: conf/experiments.yaml. `run_experiment(ExperimentsConfig(...))` is the same
without Hydra.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from icl_regression.catalog import output_dir
from icl_regression.cli import App, run_app
from icl_regression.config import once, to_dataclass
from icl_regression.config.build import MISSING
from icl_regression.config.checks import one_of_each, require
from icl_regression.experiments.options import (
    ExperimentOptions,
    ExperimentSkipped,
    SharedOptions,
    experiment_options_type,
    option_fields,
)
from icl_regression.experiments.registry import EXPERIMENTS, experiment_names
from icl_regression.figures.style import FORMATS
from icl_regression.integrity import RunFileError, read_json_or_none
from icl_regression.storage import write_json


@dataclass(frozen=True)
class ExperimentsConfig:
    name: str = ""
    runs: tuple[str, ...] = ()
    out: str = "plots/experiments"
    per_run_plots: bool = True
    recompute: bool = False
    formats: tuple[str, ...] = ("png",)
    dpi: int = 150
    out_dir: str | None = None
    options: Any = field(default_factory=ExperimentOptions)  # an ExperimentOptions


@dataclass(frozen=True)
class AppKeys:
    """The app's own keys (conf/experiments.yaml), beside the options (ExperimentsArgs)."""

    name: str = MISSING  # one of the registered experiments
    runs: Any = "runs/${name}*"  # a run directory, a glob, or a list; searched recursively
    out: str = "plots/experiments"
    per_run_plots: bool = True  # single-run figures also go to RUN/plots/experiment_<name>
    recompute: bool = False  # true: ignore stored RUN/experiments/<name>.json
    formats: tuple[str, ...] = ("png",)
    dpi: int = 150
    out_dir: str | None = None  # per-run records and plots go to OUT_DIR/<run>-<hash>/
    plugins: tuple[str, ...] = ()  # modules to import first (plugins.py)


@functools.cache
def _args_type(names: tuple[str, ...]) -> type:
    built = dataclasses.make_dataclass("ExperimentsArgs", option_fields(),
                                       bases=(AppKeys, SharedOptions), frozen=True)
    built.__module__ = __name__
    return built


def experiments_args_type() -> type:
    """The app's schema: its keys, the shared options and every experiment's own options (flat:
    `corrupted_demos.fractions=[0,0.5]`), built from the registry."""
    return _args_type(experiment_names())


@once
def check_experiments(args) -> ExperimentsConfig:
    """The one place the experiments app's values are checked -> ExperimentsConfig."""
    runs = tuple(args.runs) if isinstance(args.runs, (list, tuple)) else (args.runs,)
    names = experiment_names()
    require(args.name in names, "name", args.name, f"allowed: {', '.join(names)}")
    require(bool(runs) and all(isinstance(r, str) and r for r in runs), "runs", runs,
            "a run directory, a glob, or a list of them")
    one_of_each(args.formats, FORMATS, "formats")
    require(30 <= args.dpi <= 2400, "dpi", args.dpi, "must be in 30..2400")
    require(args.n_prompts >= 2, "n_prompts", args.n_prompts, "must be >= 2")
    require(args.seed >= 0, "seed", args.seed, "must be >= 0")
    for name in names:
        spec = EXPERIMENTS.get(name)
        if spec.options is not None and spec.check is not None:
            spec.check(getattr(args, name))
    options_type = experiment_options_type()
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(options_type)}
    top = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExperimentsConfig)
           if f.name not in ("options", "runs")}
    return ExperimentsConfig(**top, runs=runs, options=options_type(**options))


def experiments_config(values: Mapping) -> ExperimentsConfig:
    """The composed config (plain dict) -> checked ExperimentsConfig; ConfigError if bad."""
    return check_experiments(to_dataclass(values, experiments_args_type()))


def stored_options(cfg: ExperimentsConfig) -> dict:
    """The options that determine an experiment's numbers (the cache key with the step)."""
    options = dataclasses.asdict(cfg.options)
    shared = {k: v for k, v in options.items() if not isinstance(v, dict)}
    own = options.get(cfg.name)
    return json.loads(json.dumps({**shared, **({cfg.name: own} if own else {})}))


@dataclass
class ExperimentReport:
    records: list[dict] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # run dir -> why


def _cached(paths: list[Path], options: dict, step: int | None) -> dict | None:
    """A stored record computed with these options at this step; a damaged one is ignored
    (and computed again)."""
    for path in paths:
        stored = read_json_or_none(path)
        if (isinstance(stored, dict) and stored.get("options") == options
                and stored.get("step") == step and isinstance(stored.get("results"), dict)):
            return stored
    return None


@functools.lru_cache(maxsize=4)
def _load(run_dir: Path):
    """The loaded run (its newest checkpoint that restores), kept while several experiments of
    one process use it (its jitted forward is compiled once per shape)."""
    from icl_regression.run import load_run

    return load_run(run_dir)


def _check_family(run_dir: Path, name: str) -> None:
    from icl_regression.data.families import family_of
    from icl_regression.run import load_config

    task = load_config(run_dir).task
    if EXPERIMENTS.get(name).needs_linear_labels and not family_of(task).linear_labels:
        raise ExperimentSkipped(f"task.family={task.family!r}: labels are not y = w·x + noise, "
                                f"which {name} needs")


def evaluate_one(run_dir: Path, cfg: ExperimentsConfig) -> dict:
    """The experiment's record for one run: computed, or reused from RUN/experiments/."""
    from icl_regression.checkpoints import checkpoint_steps

    steps = checkpoint_steps(run_dir / "checkpoints")
    if not steps:
        raise ExperimentSkipped("no checkpoints/ (train it first)")
    _check_family(run_dir, cfg.name)
    path = output_dir(cfg.out_dir, run_dir) / "experiments" / f"{cfg.name}.json"
    options = stored_options(cfg)
    paths = list(dict.fromkeys([path, run_dir / "experiments" / f"{cfg.name}.json"]))
    if not cfg.recompute and (record := _cached(paths, options, steps[-1])) is not None:
        return record
    start = time.perf_counter()
    run = _load(run_dir.resolve())
    results = EXPERIMENTS.get(cfg.name).loop(run, cfg.options)
    record = {"experiment": cfg.name, "run_dir": str(run_dir), "step": run.step,
              "options": options, "wall_s": time.perf_counter() - start, "results": results}
    write_json(path, record, indent=1)  # atomically: a trainer of the run is not disturbed
    return record


def run_experiment(cfg: ExperimentsConfig, log: Callable[[str], None] = print) -> ExperimentReport:
    """Numbers for every matched run, then the figure; returns what was done."""
    from icl_regression.catalog import discover_runs
    from icl_regression.figures.stored_runs import RunRecord, label_records
    from icl_regression.figures.style import save_figure

    report = ExperimentReport()
    found = []
    for run_dir in tqdm(discover_runs(cfg.runs), desc=cfg.name, unit="run", file=sys.stderr):
        try:
            record = evaluate_one(run_dir, cfg)
        except (ExperimentSkipped, FileNotFoundError, RunFileError) as why:
            report.skipped[str(run_dir)] = str(why)
            continue
        found.append((RunRecord(run_dir, _config_dict(run_dir)), record))
    label_records([run for run, _ in found])
    for run, record in found:  # the run found here, never a path stored in the record
        report.records.append({**record, "run_dir": str(run.path), "label": run.label})
    for run_dir, why in report.skipped.items():
        log(f"skipped {run_dir}: {why}")
    if not report.records:
        return report
    out = Path(cfg.out)
    write_json(out / f"{cfg.name}.json", report.records, indent=1)
    report.written.append(out / f"{cfg.name}.json")
    figure = EXPERIMENTS.get(cfg.name).figure
    report.written += save_figure(figure(report.records), out / cfg.name, cfg.formats, cfg.dpi)
    if cfg.per_run_plots and not EXPERIMENTS.get(cfg.name).multi_run:
        for record in report.records:
            stem = output_dir(cfg.out_dir, Path(record["run_dir"])) / "plots" / (
                f"experiment_{cfg.name}")
            report.written += save_figure(figure([record]), stem, cfg.formats, cfg.dpi)
    log(f"{cfg.name}: {len(report.records)} runs; wrote {len(report.written)} files "
        f"(figure: {out / cfg.name}.{cfg.formats[0]})")
    return report


def _config_dict(run_dir: Path) -> dict:
    from icl_regression.run import load_config

    return dataclasses.asdict(load_config(run_dir))


def _experiments_app(cfg: ExperimentsConfig, _output_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    if not run_experiment(cfg).records:
        print(f"error: no run could serve {cfg.name} (see the skipped runs above)",
              file=sys.stderr)
        sys.exit(1)


APP = App("experiments", experiments_args_type, check_experiments, _experiments_app, hints={
    "name": lambda: f"name is required; one of {', '.join(experiment_names())}"})


def main() -> None:
    """`icl-experiments` / `python -m icl_regression.experiments` (cli.py runs it)."""
    run_app(APP)


if __name__ == "__main__":
    main()
