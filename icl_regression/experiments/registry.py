"""`python -m icl_regression.experiments name=<experiment> runs=<dirs or glob>`: an experiment's
numbers from trained runs, and its figure.

For every run matched by `runs` (searched recursively, multirun folders included) the
experiment's loop (experiment_loops.py) writes `RUN/experiments/<name>.json` atomically; a
stored file computed with the same options at the same step is reused unless
`recompute=true`. The figure (experiment_figures.py) goes to `out/<name>.<fmt>` with the
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

from icl_regression.config import CORRUPT_MODES, ConfigError
from icl_regression.figures.style import FORMATS, write_atomically

EXPERIMENTS = ("task_diversity", "scale", "prior_override", "corrupted_demos",
               "order_sensitivity", "demo_selection", "long_context")


class ExperimentSkipped(Exception):
    """This run cannot serve this experiment; the message says why and what would."""


@dataclass(frozen=True)
class CorruptionOptions:
    fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    modes: tuple[str, ...] = ("noise", "other_w")
    ridge_lam: float = 1.0  # the ridge line (shrinkage also damps outliers)
    huber_delta: float = 0.1  # Huber threshold, in units of the label scale √(E y²)


@dataclass(frozen=True)
class OrderOptions:
    permutations: int = 8  # random orders of the same demonstrations per prompt
    prompts: int = 500
    steps: tuple[int, ...] | None = None  # checkpoints to evaluate; None: all stored ones


@dataclass(frozen=True)
class SelectionOptions:
    pool_points: int = 64  # labelled examples per prompt to choose the k demonstrations from


@dataclass(frozen=True)
class LongContextOptions:
    n_points: int = 0  # 0: the positional table length (learned) or 3 × n_points (none)


@dataclass(frozen=True)
class ExperimentOptions:
    n_prompts: int = 2000
    seed: int = 0  # added to the run's seed for the evaluation prompts
    corrupted_demos: CorruptionOptions = field(default_factory=CorruptionOptions)
    order_sensitivity: OrderOptions = field(default_factory=OrderOptions)
    demo_selection: SelectionOptions = field(default_factory=SelectionOptions)
    long_context: LongContextOptions = field(default_factory=LongContextOptions)


MULTI_RUN = ("task_diversity", "scale")  # figures that only make sense across a sweep
# Experiments built on y = w·x + noise (a task pool of w, a shifted w prior, other tasks' w as
# corrupted labels): skipped, with the reason, for the other task families (issue 13).
NEEDS_LINEAR_LABELS = ("task_diversity", "prior_override", "corrupted_demos")


@dataclass(frozen=True)
class ExperimentsConfig:
    name: str = ""
    runs: tuple[str, ...] = ()
    out: str = "plots/experiments"
    per_run_plots: bool = True
    recompute: bool = False
    formats: tuple[str, ...] = ("png",)
    dpi: int = 150
    options: ExperimentOptions = field(default_factory=ExperimentOptions)


def _build(cls: type, values: Mapping, prefix: str) -> Any:
    """Nested plain dict -> frozen dataclass; lists become tuples; unknown keys fail."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{prefix}{key}: unknown key; allowed: {', '.join(fields)}")
        default = fields[key].default_factory  # type: ignore[misc]
        if dataclasses.is_dataclass(default) and isinstance(value, Mapping):
            value = _build(default, value, f"{prefix}{key}.")
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed; {allowed}")


def experiments_config(values: Mapping) -> ExperimentsConfig:
    """The composed config (plain dict) -> validated ExperimentsConfig; ConfigError if bad."""
    values = {k: v for k, v in values.items() if k != "hydra"}
    top = {f.name for f in dataclasses.fields(ExperimentsConfig)} - {"options"}
    runs = values.get("runs")
    values["runs"] = [runs] if isinstance(runs, str) else list(runs or [])
    cfg = _build(ExperimentsConfig, {k: v for k, v in values.items() if k in top}, "")
    cfg = dataclasses.replace(cfg, options=_build(
        ExperimentOptions, {k: v for k, v in values.items() if k not in top}, ""))
    o = cfg.options
    _require(cfg.name in EXPERIMENTS, "name", cfg.name, f"allowed: {', '.join(EXPERIMENTS)}")
    _require(bool(cfg.runs) and all(isinstance(r, str) and r for r in cfg.runs), "runs",
             list(cfg.runs), "a run directory, a glob, or a list of them")
    _require(bool(cfg.formats) and set(cfg.formats) <= set(FORMATS), "formats",
             list(cfg.formats), f"allowed: {', '.join(FORMATS)}")
    _require(cfg.dpi >= 30, "dpi", cfg.dpi, "must be >= 30")
    _require(o.n_prompts >= 2, "n_prompts", o.n_prompts, "must be >= 2")
    c = o.corrupted_demos
    _require(bool(c.fractions) and all(0 <= f <= 1 for f in c.fractions),
             "corrupted_demos.fractions", list(c.fractions), "each must be in [0, 1]")
    _require(bool(c.modes) and set(c.modes) <= set(CORRUPT_MODES), "corrupted_demos.modes",
             list(c.modes), f"allowed: {', '.join(CORRUPT_MODES)}")
    _require(c.ridge_lam > 0, "corrupted_demos.ridge_lam", c.ridge_lam, "must be > 0")
    _require(c.huber_delta > 0, "corrupted_demos.huber_delta", c.huber_delta, "must be > 0")
    r = o.order_sensitivity
    _require(r.permutations >= 2, "order_sensitivity.permutations", r.permutations,
             "must be >= 2")
    _require(r.prompts >= 2, "order_sensitivity.prompts", r.prompts, "must be >= 2")
    _require(r.steps is None or all(isinstance(s, int) and s > 0 for s in r.steps),
             "order_sensitivity.steps", r.steps, "null (all checkpoints) or positive steps")
    _require(o.demo_selection.pool_points >= 1, "demo_selection.pool_points",
             o.demo_selection.pool_points, "must be >= 1")
    _require(o.long_context.n_points >= 0, "long_context.n_points", o.long_context.n_points,
             "must be >= 0 (0: the positional table, or 3 × n_points without positions)")
    return cfg


def stored_options(cfg: ExperimentsConfig) -> dict:
    """The options that determine an experiment's numbers (the cache key with the step)."""
    options = dataclasses.asdict(cfg.options)
    shared = {k: v for k, v in options.items() if not isinstance(v, dict)}
    own = options.get(cfg.name)
    return json.loads(json.dumps({**shared, **({cfg.name: own} if own else {})}))


@dataclass
class Report:
    records: list[dict] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # run dir -> why


def _cached(path: Path, options: dict, step: int | None) -> dict | None:
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stored if stored.get("options") == options and stored.get("step") == step else None


@functools.lru_cache(maxsize=4)
def _load(run_dir: Path, step: int):
    """The loaded run, kept while several experiments of one process use it (its jitted
    forward is compiled once per shape, not once per experiment)."""
    from icl_regression.run import load_run

    return load_run(run_dir, step)


def _check_family(run_dir: Path, name: str) -> None:
    from icl_regression.data.families import family_of
    from icl_regression.run import load_config

    task = load_config(run_dir).task
    if name in NEEDS_LINEAR_LABELS and not family_of(task).linear_labels:
        raise ExperimentSkipped(f"task.family={task.family!r}: labels are not y = w·x + noise, "
                                f"which {name} needs")


def evaluate_one(run_dir: Path, cfg: ExperimentsConfig) -> dict:
    """The experiment's record for one run: computed, or reused from RUN/experiments/."""
    from icl_regression.checkpoints import Checkpointer, has_checkpoint

    if not has_checkpoint(run_dir / "checkpoints"):
        raise ExperimentSkipped("no checkpoints/ (train it first)")
    _check_family(run_dir, cfg.name)
    path = run_dir / "experiments" / f"{cfg.name}.json"
    options = stored_options(cfg)
    ckpt = Checkpointer(run_dir / "checkpoints")
    latest = ckpt.latest_step()
    ckpt.close()
    if not cfg.recompute and (record := _cached(path, options, latest)) is not None:
        return record
    start = time.perf_counter()
    from icl_regression.experiments.loops import LOOPS

    run = _load(run_dir.resolve(), latest)
    results = LOOPS[cfg.name](run, cfg.options)
    record = {"experiment": cfg.name, "run_dir": str(run_dir), "step": run.step,
              "options": options, "wall_s": time.perf_counter() - start, "results": results}
    write_atomically(path, json.dumps(record, indent=1).encode())
    return record


def run_experiment(cfg: ExperimentsConfig, log: Callable[[str], None] = print) -> Report:
    """Numbers for every matched run, then the figure; returns what was done."""
    from icl_regression.figures.experiments import FIGURES
    from icl_regression.figures.stored_runs import RunRecord, discover_runs, run_labels
    from icl_regression.figures.style import save_figure

    report = Report()
    found = []
    for run_dir in tqdm(discover_runs(cfg.runs), desc=cfg.name, unit="run", file=sys.stderr):
        try:
            record = evaluate_one(run_dir, cfg)
        except (ExperimentSkipped, FileNotFoundError) as why:
            report.skipped[str(run_dir)] = str(why)
            continue
        found.append((RunRecord(run_dir, _config_dict(run_dir)), record))
    run_labels([run for run, _ in found])
    for run, record in found:
        report.records.append({**record, "label": run.label})
    for run_dir, why in report.skipped.items():
        log(f"skipped {run_dir}: {why}")
    if not report.records:
        return report
    out = Path(cfg.out)
    write_atomically(out / f"{cfg.name}.json", json.dumps(report.records, indent=1).encode())
    report.written.append(out / f"{cfg.name}.json")
    report.written += save_figure(FIGURES[cfg.name](report.records), out / cfg.name,
                                  cfg.formats, cfg.dpi)
    if cfg.per_run_plots and cfg.name not in MULTI_RUN:
        for record in report.records:
            stem = Path(record["run_dir"]) / "plots" / f"experiment_{cfg.name}"
            report.written += save_figure(FIGURES[cfg.name]([record]), stem, cfg.formats,
                                          cfg.dpi)
    log(f"{cfg.name}: {len(report.records)} runs; wrote {len(report.written)} files "
        f"(figure: {out / cfg.name}.{cfg.formats[0]})")
    return report


def _config_dict(run_dir: Path) -> dict:
    from icl_regression.run import load_config

    return dataclasses.asdict(load_config(run_dir))


def main() -> None:
    import hydra
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

    from icl_regression.cli import CONF_DIR

    @hydra.main(version_base=None, config_path=CONF_DIR, config_name="experiments")
    def experiments_app(cfg: DictConfig) -> None:
        import matplotlib

        matplotlib.use("Agg")
        try:
            values = OmegaConf.to_container(cfg, resolve=True)
        except (MissingMandatoryValue, InterpolationToMissingValueError):  # name=??? unset
            print(f"error: name is required; allowed: {', '.join(EXPERIMENTS)}", file=sys.stderr)
            sys.exit(2)
        try:
            report = run_experiment(experiments_config(values))
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        if not report.records:
            print(f"error: no run could serve {cfg.name} (see the skipped runs above)",
                  file=sys.stderr)
            sys.exit(1)

    experiments_app()


if __name__ == "__main__":
    main()
