"""`python -m icl_regression.figures` / `icl-figures`: every figure, regenerated from stored runs.

Reads run directories only (`.hydra/config.yaml`, `metrics.jsonl`, `eval.json`, `probes.json`,
`attention.npz`); never imports JAX or model code. With `out_dir=DIR` nothing is written into a
run (read-only storage, or a run still training): computed files and per-run plots go to
DIR/<run folder>-<hash>/ and are read from there first. Missing analysis files are computed first by
the analysis apps, as subprocesses: attention.npz whenever a trained run lacks it (one prompt),
eval.json and probes.json only with `compute_missing=true`. Runs that cannot be drawn are listed
with the reason.
Options: conf/figures.yaml. `make_figures(FiguresConfig(...))` is the same thing without Hydra.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from tqdm import tqdm

from icl_regression.catalog import discover_runs, output_dir
from icl_regression.cli import App, run_app
from icl_regression.config import once, to_dataclass
from icl_regression.config.checks import indices, one_of_each, require
from icl_regression.figures import sweeps
from icl_regression.figures.analysis_apps import compute_missing
from icl_regression.figures.per_run import FigureSkipped, chosen_setting, run_figures
from icl_regression.figures.stored_runs import RunRecord, bayes_lambda, label_records, load_record
from icl_regression.figures.style import FORMATS, default_baselines, save_figure


@dataclass(frozen=True)
class AttentionOptions:
    enabled: bool = True  # needs checkpoints/ and icl_regression.run.load_run
    layers: tuple[int, ...] | None = None  # 0-based; None = all
    heads: tuple[int, ...] | None = None
    seed: int = 0  # the prompt drawn from the run's training distribution


@dataclass(frozen=True)
class FiguresConfig:
    runs: Any = ("runs",)  # a run directory, a glob, or a list; searched recursively
    out: str = "plots"  # figure folder; per-run figures go to OUT/<run label>/
    per_run_plots: bool = True  # also write each run's figures into RUN/plots/
    out_dir: str | None = None  # computed files and per-run plots go to OUT_DIR/<run>-<hash>/
    compute_missing: bool = False  # compute eval.json / probes.json where missing
    formats: tuple[str, ...] = ("png", "pdf")
    dpi: int = 150
    baselines: Any = None  # eval.json names (one or a list); None: one per baseline
    setting: str | None = None  # eval.json setting of the SPD/ILWD figures; None: training
    attention: AttentionOptions = field(default_factory=AttentionOptions)
    plugins: tuple[str, ...] = ()  # modules to import first (icl_regression.plugins)


def _as_tuple(value: Any) -> tuple | None:
    return None if value is None else tuple(value) if isinstance(value, (list, tuple)) else (value,)


@once
def check_figures(cfg: FiguresConfig) -> FiguresConfig:
    """The one place FiguresConfig values are checked; `runs` and `baselines` become tuples."""
    runs, baselines = _as_tuple(cfg.runs) or (), _as_tuple(cfg.baselines)
    require(bool(runs) and all(isinstance(r, str) and r for r in runs), "runs", cfg.runs,
            "a run directory, a glob or a list of them")
    require(baselines is None or all(isinstance(b, str) and b for b in baselines), "baselines",
            cfg.baselines, "eval.json predictor names, e.g. [ols, 'ridge(lam=bayes)'], or null")
    one_of_each(cfg.formats, FORMATS, "formats")
    require(30 <= cfg.dpi <= 2400, "dpi", cfg.dpi, "must be in 30..2400")
    require(bool(cfg.out), "out", cfg.out, "a folder for the figures")
    indices(cfg.attention.layers, "attention.layers", "layer indices")
    indices(cfg.attention.heads, "attention.heads", "head indices")
    require(cfg.attention.seed >= 0, "attention.seed", cfg.attention.seed, "must be >= 0")
    return dataclasses.replace(cfg, runs=runs, baselines=baselines)


def figures_config(values: Mapping) -> FiguresConfig:
    """Plain dict (the composed Hydra config) -> checked FiguresConfig; ConfigError if bad."""
    return check_figures(to_dataclass(values, FiguresConfig))


@dataclass
class FiguresReport:
    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # run dir -> why nothing was drawn
    notes: dict[str, list[str]] = field(default_factory=dict)  # run dir -> figures left out


def sweep_name(kind: str, first: RunRecord, used: set[str]) -> str:
    """`depth_sweep` for the depth_sweep preset, `<experiment>_depth` otherwise; _2, _3 if taken."""
    experiment = str(first.config.get("name", "runs"))
    base = experiment if kind in experiment else f"{experiment}_{kind}"
    name = next(f"{base}_{i}" if i > 1 else base for i in range(1, len(used) + 2)
                if (f"{base}_{i}" if i > 1 else base) not in used)
    used.add(name)
    return name


def _sweep_figures(records: Sequence[RunRecord], options: FiguresConfig
                   ) -> Iterator[tuple[str, Callable[[], Figure]]]:
    """(file stem, builder) for each depth and noise sweep found among the runs."""
    with_eval = {r.label: r for r in records if r.eval}
    configs = {label: r.config for label, r in with_eval.items()}

    def spd_of(record: RunRecord) -> tuple[list, dict]:
        setting = chosen_setting(record, options.setting, "spd")
        return setting["k"], setting["spd"]

    used: set[str] = set()
    for group in sweeps.group_sweeps(configs, "model.n_layer"):
        runs = [with_eval[label] for label in group]
        name = sweep_name("depth", runs[0], used)

        def depth(runs=runs) -> Figure:
            spd = {r.config["model"]["n_layer"]: spd_of(r)[1] for r in runs}
            chosen = list(options.baselines or default_baselines(list(spd_of(runs[0])[1])))
            depths, best, best_spd = sweeps.closest_baselines(spd, chosen)
            return sweeps.plot_depth_sweep(depths, spd_of(runs[0])[0], chosen, best, best_spd,
                                           bayes_lambda=bayes_lambda(runs[0].eval))
        yield name, depth

    for group in sweeps.group_sweeps(configs, "task.noise_std"):
        runs = [with_eval[label] for label in group]
        name = sweep_name("noise", runs[0], used)

        def noise(runs=runs) -> Figure:
            entries = []
            for run in runs:
                lams, spd = sweeps.ridge_lambda_spd(spd_of(run)[1], spd_of(run)[0])
                if lams.size == 0:
                    raise FigureSkipped(f"{run.path}: no ridge(lam=…) entries in eval.json spd")
                entries.append(dict(noise_std=run.config["task"]["noise_std"], lams=lams,
                                    spd=spd, bayes_lambda=bayes_lambda(run.eval) or 0.0))
            return sweeps.plot_noise_sweep(entries)
        yield name, noise


def _draw(name: str, build: Callable[[], Figure], folders: Sequence[Path],
          options: FiguresConfig, report: FiguresReport, notes: list[str]) -> None:
    try:
        figure = build()
    except FigureSkipped as why:
        notes.append(f"{name}: {why}")
        return
    except (KeyError, ValueError, TypeError, IndexError) as error:  # malformed json contents
        notes.append(f"{name}: cannot draw ({type(error).__name__}: {error})")
        return
    report.written += save_figure(figure, [folder / name for folder in folders], options.formats,
                                  options.dpi)


def make_figures(options: FiguresConfig, log: Callable[[str], None] = print) -> FiguresReport:
    """Draw every figure for the runs matched by `options.runs`; return what was done."""
    report = FiguresReport()
    records = []
    for run_dir in discover_runs(options.runs):
        compute_missing(run_dir, options, log)
        loaded = load_record(run_dir, options.out_dir)
        if isinstance(loaded, str):
            report.skipped[str(run_dir)] = loaded
        else:
            records.append(loaded)
    label_records(records)
    out = Path(options.out)
    for record in tqdm(records, desc="figures", unit="run", file=sys.stderr):
        folders = [out / record.label] + (
            [output_dir(options.out_dir, record.path) / "plots"] if options.per_run_plots else [])
        for name, build in run_figures(record, options):
            _draw(name, build, folders, options, report, record.notes)
        if record.notes:
            report.notes[str(record.path)] = record.notes
    sweep_notes: list[str] = []
    for name, build in _sweep_figures(records, options):
        _draw(name, build, [out / "sweeps"], options, report, sweep_notes)
    if sweep_notes:
        report.notes["sweeps"] = sweep_notes
    for run_dir, reason in report.skipped.items():
        log(f"skipped {run_dir}: {reason}")
    for run_dir, notes in report.notes.items():
        log(f"partly drawn {run_dir}: " + "; ".join(notes))
    log(f"wrote {len(report.written)} files ({len(records)} runs) to {out}/"
        + (" and each run's plots/" if options.per_run_plots else ""))
    return report


def _figures_app(options: FiguresConfig, _output_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    if not make_figures(options).written:
        print("error: no figure was drawn (see the skipped runs above)", file=sys.stderr)
        sys.exit(1)


APP = App("figures", FiguresConfig, check_figures, _figures_app)


def main() -> None:
    """`icl-figures` / `python -m icl_regression.figures` (cli.py runs it)."""
    run_app(APP)


if __name__ == "__main__":
    main()
