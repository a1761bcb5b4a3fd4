"""`python -m icl_regression.figures` / `icl-figures`: every figure, regenerated from stored runs.

Reads run directories only (`.hydra/config.yaml`, `metrics.jsonl`, `eval.json`, `probes.json`,
and `checkpoints/` for the attention maps); never trains. Missing eval.json/probes.json are
computed only with `compute_missing=true`. Runs that cannot be drawn are listed with the reason.
Options: conf/figures.yaml. `make_figures(FiguresConfig(...))` is the same thing without Hydra.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from icl_regression.config import ConfigError
from icl_regression.figures import mixture, plots, sweeps
from icl_regression.figures.stored_runs import (
    RunRecord,
    bayes_lambda,
    discover_runs,
    load_record,
    model_label,
    run_labels,
)
from icl_regression.figures.style import FORMATS, default_baselines, save_figure


@dataclass(frozen=True)
class AttentionOptions:
    enabled: bool = True
    layers: tuple[int, ...] | None = None  # 0-based; None = all
    heads: tuple[int, ...] | None = None
    seed: int = 0  # the prompt drawn from the run's training distribution


@dataclass(frozen=True)
class FiguresConfig:
    runs: tuple[str, ...] = ("runs",)
    out: str = "plots"
    per_run_plots: bool = True
    compute_missing: bool = False
    formats: tuple[str, ...] = ("png", "pdf")
    dpi: int = 150
    baselines: tuple[str, ...] | None = None  # None: one per family
    setting: str | None = None  # None: the training distribution
    attention: AttentionOptions = field(default_factory=AttentionOptions)


def _check_keys(values: Mapping, schema: type, prefix: str) -> None:
    names = sorted(f.name for f in dataclasses.fields(schema))
    for key in values:
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key; allowed: {', '.join(names)}")


def figures_config(values: Mapping) -> FiguresConfig:
    """Plain dict (the composed Hydra config) -> validated FiguresConfig; ConfigError if bad."""
    values = {k: v for k, v in values.items() if k != "hydra"}
    _check_keys(values, FiguresConfig, "")
    runs = values.get("runs", "runs")
    runs = (runs,) if isinstance(runs, str) else tuple(runs or ())
    if not runs or not all(isinstance(r, str) and r for r in runs):
        raise ConfigError(f"runs={runs!r} is not allowed; a directory, a glob or a list of them")
    formats = tuple(values.get("formats", ("png", "pdf")))
    if not formats or any(f not in FORMATS for f in formats):
        raise ConfigError(f"formats={list(formats)} is not allowed; allowed: {', '.join(FORMATS)}")
    if int(values.get("dpi", 150)) < 30:
        raise ConfigError(f"dpi={values['dpi']} is not allowed; must be >= 30")
    attention = dict(values.get("attention") or {})
    _check_keys(attention, AttentionOptions, "attention.")
    tuples = lambda v: None if v is None else tuple(v)
    baselines = values.get("baselines")
    return FiguresConfig(
        runs=runs, out=str(values.get("out", "plots")),
        per_run_plots=bool(values.get("per_run_plots", True)),
        compute_missing=bool(values.get("compute_missing", False)), formats=formats,
        dpi=int(values.get("dpi", 150)),
        baselines=(baselines,) if isinstance(baselines, str) else tuples(baselines),
        setting=values.get("setting"),
        attention=AttentionOptions(
            enabled=bool(attention.get("enabled", True)), layers=tuples(attention.get("layers")),
            heads=tuples(attention.get("heads")), seed=int(attention.get("seed", 0))))


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # run dir -> why nothing was drawn
    notes: dict[str, list[str]] = field(default_factory=dict)  # run dir -> figures left out


class FigureSkipped(Exception):
    """A figure cannot be drawn for this run; the message says why."""


def _attention_figure(record: RunRecord, options: AttentionOptions) -> Figure:
    if not (record.path / "checkpoints").is_dir():
        raise FigureSkipped("no checkpoints/")
    try:
        from icl_regression.run import load_run
    except ImportError as error:
        raise FigureSkipped(f"needs icl_regression.run.load_run, not available ({error})") \
            from error
    import jax

    run = load_run(record.path)
    xs, ys, _ = run.sample(jax.random.key(options.seed), 1)  # (1, n, d), (1, n)
    attention = np.asarray(run.intermediates(xs, ys)["attention"])[:, 0]  # (L, H, T, T)
    labels = plots.token_labels(attention.shape[-1], run.x_positions, run.y_positions)
    return plots.plot_attention(attention, options.layers, options.heads, labels)


def chosen_setting(record: RunRecord, name: str | None, needs: str) -> dict:
    """The eval.json setting named `name` (None: the training distribution), holding `needs`."""
    settings = record.eval["settings"]
    name = name or plots.training_setting(settings)
    if name not in settings:
        raise FigureSkipped(f"setting={name!r} is not in eval.json; it has {', '.join(settings)}")
    if needs not in settings[name]:
        raise FigureSkipped(f"eval.json setting {name!r} has no {needs!r}")
    return settings[name]


def run_figures(record: RunRecord, options: FiguresConfig
                ) -> Iterator[tuple[str, Callable[[], Figure]]]:
    """(file stem, figure builder) for every figure this run's files allow."""
    label = model_label(record.config)
    d = record.config.get("task", {}).get("d")
    if record.metrics:
        yield "training_curves", lambda: plots.plot_training_curves(
            record.metrics, model_label=label)
    if record.eval:
        lam = bayes_lambda(record.config)
        common = dict(model_label=label, bayes_lambda=lam, d=d)
        yield "error_vs_k", lambda: plots.plot_error_curves(
            record.eval["settings"], options.baselines, n_prompts=record.eval.get("n_prompts"),
            **common)
        yield "spd_ilwd", lambda: plots.plot_spd_ilwd(
            chosen_setting(record, options.setting, "spd"), options.baselines, **common)
        yield "sensitivity", lambda: plots.plot_sensitivity(
            chosen_setting(record, options.setting, "sensitivity_cos"), options.baselines,
            **common)
        if record.eval.get("family", {}).get("name", "linear") != "linear":  # issue 13
            yield "family_error_vs_k", lambda: mixture.plot_family_errors(record.eval)
        if "components" in record.eval["settings"].get("train", {}):
            yield "components", lambda: mixture.plot_components(record.eval)
    if record.probes:
        families = dict.fromkeys(p for t in record.probes["targets"].values() for p in t)
        for family in families:
            yield f"probes_{family}", lambda f=family: plots.plot_probe_heatmaps(
                record.probes, f)
    if options.attention.enabled:
        yield "attention", lambda: _attention_figure(record, options.attention)


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
                                           bayes_lambda=bayes_lambda(runs[0].config))
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
                                    spd=spd, bayes_lambda=bayes_lambda(run.config) or 0.0))
            return sweeps.plot_noise_sweep(entries)
        yield name, noise


def _draw(name: str, build: Callable[[], Figure], folders: Sequence[Path],
          options: FiguresConfig, report: Report, notes: list[str]) -> None:
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


def make_figures(options: FiguresConfig, log: Callable[[str], None] = print) -> Report:
    """Draw every figure for the runs matched by `options.runs`; return what was done."""
    report = Report()
    records = []
    for run_dir in discover_runs(options.runs):
        loaded = load_record(run_dir, options.compute_missing)
        if isinstance(loaded, str):
            report.skipped[str(run_dir)] = loaded
        else:
            records.append(loaded)
    run_labels(records)
    out = Path(options.out)
    for record in tqdm(records, desc="figures", unit="run", file=sys.stderr):
        folders = [out / record.label] + ([record.path / "plots"] if options.per_run_plots
                                          else [])
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


def _hydra_main() -> Callable[[], None]:
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from icl_regression.cli import CONF_DIR

    @hydra.main(version_base=None, config_path=CONF_DIR, config_name="figures")
    def figures_app(cfg: DictConfig) -> None:
        import matplotlib

        matplotlib.use("Agg")
        try:
            options = figures_config(OmegaConf.to_container(cfg, resolve=True))
            report = make_figures(options)
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        if not report.written:
            print("error: no figure was drawn (see the skipped runs above)", file=sys.stderr)
            sys.exit(1)

    return figures_app


def main() -> None:
    _hydra_main()()


if __name__ == "__main__":
    main()
