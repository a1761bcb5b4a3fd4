"""The figures of one run: a registry of drawers, each turning one kind of stored file into
(file stem, figure builder) pairs. A new per-run figure is one module in this package (or a
plugin) with a function registered into RUN_FIGURES."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from matplotlib.figure import Figure

from icl_regression.figures import mixture, plots
from icl_regression.figures.attention import plot_attention
from icl_regression.figures.layerwise import layerwise_figures
from icl_regression.figures.stored_runs import RunRecord, bayes_lambda, model_label
from icl_regression.registry import Registry, import_submodules

Drawn = Iterator[tuple[str, Callable[[], Figure]]]
# name -> (record, FiguresConfig) -> (stem, builder) pairs; drawn in registration order
RUN_FIGURES: Registry[Callable[..., Drawn]] = Registry("run figure")


class FigureSkipped(Exception):
    """A figure cannot be drawn for this run; the message says why."""


def chosen_setting(record: RunRecord, name: str | None, needs: str) -> dict:
    """The eval.json setting named `name` (None: the training distribution), holding `needs`."""
    settings = record.eval["settings"]
    name = name or plots.training_setting(settings)
    if name not in settings:
        raise FigureSkipped(f"setting={name!r} is not in eval.json; it has {', '.join(settings)}")
    if needs not in settings[name]:
        raise FigureSkipped(f"eval.json setting {name!r} has no {needs!r}")
    return settings[name]


@RUN_FIGURES.register("training")
def _training(record: RunRecord, options) -> Drawn:
    if record.metrics:
        yield "training_curves", lambda: plots.plot_training_curves(
            record.metrics, model_label=model_label(record.config))


@RUN_FIGURES.register("evaluation")
def _evaluation(record: RunRecord, options) -> Drawn:
    if not record.eval:
        return
    common = dict(model_label=model_label(record.config), bayes_lambda=bayes_lambda(record.eval),
                  d=record.config.get("task", {}).get("d"))
    yield "error_vs_k", lambda: plots.plot_error_curves(
        record.eval["settings"], options.baselines, n_prompts=record.eval.get("n_prompts"),
        **common)
    yield "spd_ilwd", lambda: plots.plot_spd_ilwd(
        chosen_setting(record, options.setting, "spd"), options.baselines, **common)
    yield "sensitivity", lambda: plots.plot_sensitivity(
        chosen_setting(record, options.setting, "sensitivity_cos"), options.baselines,
        **common)


@RUN_FIGURES.register("families")
def _families(record: RunRecord, options) -> Drawn:
    if not record.eval:
        return
    if record.eval.get("family", {}).get("name", "linear") != "linear":
        yield "family_error_vs_k", lambda: mixture.plot_family_errors(record.eval)
    if "components" in record.eval["settings"].get("train", {}):
        yield "components", lambda: mixture.plot_components(record.eval)


@RUN_FIGURES.register("probes")
def _probes(record: RunRecord, options) -> Drawn:
    if record.probes:
        kinds = dict.fromkeys(p for t in record.probes["targets"].values() for p in t)
        for kind in kinds:
            yield f"probes_{kind}", lambda f=kind: plots.plot_probe_heatmaps(
                record.probes, f)


@RUN_FIGURES.register("layerwise")
def _layerwise(record: RunRecord, options) -> Drawn:
    yield from layerwise_figures(record.layerwise)  # layerwise.json, when the run has one


@RUN_FIGURES.register("attention")
def _attention(record: RunRecord, options) -> Drawn:
    if options.attention.enabled:
        yield "attention", lambda: _attention_figure(record, options.attention)


def _attention_figure(record: RunRecord, options) -> Figure:
    stored = record.attention
    if stored is None:
        raise FigureSkipped("no attention.npz (written from a trained run's checkpoints/)")
    if stored["attention"].size == 0:
        raise FigureSkipped("the model has no attention")
    return plot_attention(stored["attention"], options.layers, options.heads,
                          stored["token_labels"])


def run_figures(record: RunRecord, options) -> Drawn:
    """(file stem, figure builder) for every figure this run's files allow."""
    import_submodules(__package__, skip=("app", "analysis_apps"))  # a new figure: one new file
    for _, draw in RUN_FIGURES.items():
        yield from draw(record, options)
