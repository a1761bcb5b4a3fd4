"""Figure functions: plain dicts/arrays in (eval.json, probes.json, metrics.jsonl), a Figure out.

Nothing here reads files or knows about Hydra; `figures.py` does the wiring. Every function
returns a `matplotlib.figure.Figure` built without pyplot, so it is headless and leaves no global
state behind; `style.save_figure` writes it deterministically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from icl_regression.figures.style import (
    BAND_ALPHA,
    BAND_NOTE,
    BASELINE_COLOURS,
    FULL_WIDTH,
    GREY,
    MODEL,
    ONE_COLUMN,
    default_baselines,
    new_figure,
    predictor_colours,
    predictor_label,
    styled,
)

MODEL_COLOUR = BASELINE_COLOURS[MODEL]
K_LABEL = "in-context examples k"
TRAINING_SETTINGS = ("train", "training", "in_distribution", "iid", "standard")
TARGET_LABELS = {"w": "true w", "w_ols": "w_OLS (min-norm)", "w_ridge": "w_ridge (Bayes λ*)",
                 "w_gd": "w_GD (1 step, η*)", "xty": "Xᵀy"}


def training_setting(settings: Mapping[str, object]) -> str:
    """The evaluation setting that is the training distribution (else the first one)."""
    return next((s for s in TRAINING_SETTINGS if s in settings), next(iter(settings)))


def setting_title(name: str) -> str:
    return "training distribution" if name in TRAINING_SETTINGS else name.replace("_", " ")


def curve(value: object) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(mean, lo, hi) from a plain list or a {"mean", "lo", "hi"} dict; JSON nulls become NaN."""
    if isinstance(value, Mapping):
        lo, hi = value.get("lo"), value.get("hi")
        return (np.array(value["mean"], dtype=float),
                None if lo is None else np.array(lo, dtype=float),
                None if hi is None else np.array(hi, dtype=float))
    return np.array(value, dtype=float), None, None


def _draw_curves(ax, ks: np.ndarray, curves: Mapping[str, object], names: Sequence[str],
                 labels: Mapping[str, str]) -> None:
    """One line (+ band when the entry has lo/hi) per name present in `curves`."""
    styles = predictor_colours(names)
    for name in names:
        if name not in curves:
            continue
        mean, lo, hi = curve(curves[name])
        if mean.shape != ks.shape:
            raise ValueError(f"{name}: {mean.size} values but {ks.size} values of k")
        colour, linestyle = styles[name]
        is_model = name == MODEL
        ax.plot(ks, mean, color=colour, linestyle=linestyle, lw=1.8 if is_model else 1.2,
                label=labels[name], zorder=3 if is_model else 2)
        if lo is not None and hi is not None:
            ax.fill_between(ks, lo, hi, color=colour, alpha=BAND_ALPHA, lw=0)


def _mark_k_equals_d(ax, d: int | None) -> None:
    if d is not None:
        ax.axvline(d, color=GREY, lw=0.8, ls=":", zorder=1)


def _legend_below(fig: Figure, names: Sequence[str], labels: Mapping[str, str],
                  extra: Sequence[Line2D] = (), title: str | None = None) -> Figure:
    """One legend for all panels, under them, naming each predictor and its parameters; then
    the figure's title."""
    handles = [Line2D([], [], color=c, ls=ls, lw=1.8 if n == MODEL else 1.2, label=labels[n])
               for n, (c, ls) in predictor_colours(names).items()]
    handles += list(extra)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4))
    if title is not None:
        fig.suptitle(title)
    return fig


def _k_equals_d_handle(d: int | None) -> list[Line2D]:
    return [] if d is None else [Line2D([], [], color=GREY, ls=":", lw=0.8, label=f"k = d = {d}")]


def _ks_and_names(setting: Mapping, curves: Mapping, baselines: Sequence[str] | None
                  ) -> tuple[np.ndarray, list[str]]:
    """The setting's k axis and the baselines to draw (default: one per baseline)."""
    names = list(baselines) if baselines is not None else default_baselines(list(curves))
    return np.array(setting["k"], dtype=float), names


def _labels(names: Sequence[str], bayes_lambda: float | None, model_label: str) -> dict:
    return {n: predictor_label(n, bayes_lambda, model_label) for n in names}


ERROR_FLOOR = 1e-4  # lower edge of log-scale error axes; smaller values sit on the edge


@styled
def plot_error_curves(settings: Mapping[str, Mapping], baselines: Sequence[str] | None = None,
                      *, model_label: str = "model", bayes_lambda: float | None = None,
                      d: int | None = None, n_prompts: int | None = None, ncols: int = 4,
                      yscale: str = "log") -> Figure:
    """Normalised error vs k, model and baselines, one panel per evaluation setting.

    `settings` is eval.json's "settings"; the zero predictor scores 1 by construction.
    """
    names_all = list(dict.fromkeys(n for s in settings.values() for n in s["error"]))
    chosen = list(baselines) if baselines is not None else default_baselines(names_all)
    names = [MODEL, *chosen] if MODEL in names_all else chosen
    labels = _labels(names, bayes_lambda, model_label)
    ncols = min(ncols, len(settings))
    nrows = math.ceil(len(settings) / ncols)
    width = FULL_WIDTH if ncols > 1 else ONE_COLUMN
    fig = new_figure(width, 1.55 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, (name, setting) in zip(axes, settings.items(), strict=False):
        ks = np.array(setting["k"], dtype=float)
        ax.axhline(1.0, color=GREY, lw=1.0, ls=(0, (1, 1)), zorder=1)
        _mark_k_equals_d(ax, d)
        _draw_curves(ax, ks, setting["error"], names, labels)
        ax.set_yscale(yscale)
        if yscale == "log":  # exact baselines reach ~1e-14; that range would flatten the model
            ax.set_ylim(ERROR_FLOOR, None)
        ax.set_title(setting_title(name))
    for ax in axes[len(settings):]:
        ax.set_visible(False)
    for ax in axes.reshape(nrows, ncols)[:, 0]:
        ax.set_ylabel("squared error / zero pred.")
    for ax in axes.reshape(nrows, ncols)[-1]:
        ax.set_xlabel(K_LABEL)
    extra = [Line2D([], [], color=GREY, ls=(0, (1, 1)), label="zero predictor (= 1)")]
    note = BAND_NOTE + (f" over {n_prompts:,} prompts" if n_prompts else "")
    return _legend_below(fig, names, labels, extra + _k_equals_d_handle(d),
                         title=f"Error vs context length ({note})")


@styled
def plot_spd_ilwd(setting: Mapping, baselines: Sequence[str] | None = None, *,
                  model_label: str = "model", bayes_lambda: float | None = None,
                  d: int | None = None) -> Figure:
    """SPD(model, baseline) vs k; ILWD(model, baseline) vs k; R² of the model's implicit fit."""
    spd, ilwd = setting.get("spd", {}), setting.get("ilwd") or {}
    ks, names = _ks_and_names(setting, spd, baselines)
    labels = _labels(names, bayes_lambda, model_label)
    panels = ["spd"] + (["ilwd"] if ilwd else []) + (["r2"] if "ilwd_r2" in setting else [])
    fig = new_figure(FULL_WIDTH * len(panels) / 3 + 0.4, 2.8)
    axes = fig.subplots(1, len(panels), sharex=True, squeeze=False)[0]
    titles = {"spd": "prediction distance (SPD)", "ilwd": "implicit-weight distance (ILWD)",
              "r2": "linearity of the model (implicit fit)"}
    for ax, panel in zip(axes, panels, strict=True):
        _mark_k_equals_d(ax, d)
        ax.set_xlabel(K_LABEL)
        ax.set_title(titles[panel])
        if panel == "r2":
            mean, lo, hi = curve(setting["ilwd_r2"])
            ax.plot(ks, mean, color=MODEL_COLOUR, lw=1.8)
            if lo is not None and hi is not None:
                ax.fill_between(ks, lo, hi, color=MODEL_COLOUR, alpha=BAND_ALPHA, lw=0)
            ax.axhline(1.0, color=GREY, lw=0.8, ls=(0, (1, 1)))
            ax.set_ylim(min(0.0, float(np.nanmin(mean))), 1.05)
            ax.set_ylabel("R² of ŷ_model ≈ ŵ·x_query")
            continue
        _draw_curves(ax, ks, spd if panel == "spd" else ilwd, names, labels)
        ax.set_yscale("log", nonpositive="mask")
        ax.set_ylabel("E(ŷ_model − ŷ_base)² / zero pred." if panel == "spd"
                      else "E‖ŵ_model − ŵ_base‖²")
    return _legend_below(fig, names, labels, _k_equals_d_handle(d),
                         title=f"{model_label} vs baselines")


@styled
def plot_sensitivity(setting: Mapping, baselines: Sequence[str] | None = None, *,
                     model_label: str = "model", bayes_lambda: float | None = None,
                     d: int | None = None) -> Figure:
    """Cosine between ∂ŷ/∂x_query of the model and of each baseline, vs k."""
    cosines = setting["sensitivity_cos"]
    ks, names = _ks_and_names(setting, cosines, baselines)
    fig = new_figure(ONE_COLUMN, 2.4)
    ax = fig.subplots()
    _mark_k_equals_d(ax, d)
    ax.axhline(1.0, color=GREY, lw=0.8, ls=(0, (1, 1)))
    _draw_curves(ax, ks, cosines, names, _labels(names, bayes_lambda, model_label))
    ax.set_ylim(top=1.05)
    ax.set_xlabel(K_LABEL)
    ax.set_ylabel("cos(∂ŷ/∂x_query: model, baseline)")
    ax.legend(loc="lower right")
    ax.set_title("Sensitivity alignment")
    return fig


def _position_ticks(ax, labels: Sequence[object], max_ticks: int = 12) -> None:
    step = max(1, math.ceil(len(labels) / max_ticks))
    ticks = np.arange(0, len(labels), step)
    ax.set_xticks(ticks, [str(labels[i]) for i in ticks])


@styled
def plot_probe_heatmaps(probes: Mapping, probe: str = "linear") -> Figure:
    """Held-out probe R² (layer × position) per target: trained model, control, selectivity."""
    targets = [t for t in probes["targets"] if probe in probes["targets"][t]]
    if not targets:
        raise ValueError(f"probe={probe!r}: no target has it in probes.json")
    has_control = all("control_r2" in probes["targets"][t][probe] for t in targets)
    columns = ["r2", "control_r2", "selectivity"] if has_control else ["r2"]
    titles = {"r2": "trained model", "control_r2": "control (untrained)",
              "selectivity": "selectivity (trained − control)"}
    layers = list(probes["layers"])
    position_labels = list(probes.get("k", probes["positions"]))
    fig = new_figure(min(FULL_WIDTH, 2.3 * len(columns) + 0.6), 1.3 * len(targets) + 0.7)
    axes = fig.subplots(len(targets), len(columns), sharex=True, sharey=True, squeeze=False)
    images = {}
    for row, target in enumerate(targets):
        scores = probes["targets"][target][probe]
        for col, column in enumerate(columns):
            ax = axes[row, col]
            grid = (np.array(scores["r2"], dtype=float) - np.array(scores["control_r2"], float)
                    if column == "selectivity" else np.array(scores[column], dtype=float))
            diverging = column == "selectivity"
            images[column] = ax.imshow(grid, origin="lower", aspect="auto",
                                       cmap="RdBu" if diverging else "viridis",
                                       vmin=-1 if diverging else 0, vmax=1,
                                       interpolation="nearest")
            ax.grid(False)
            ax.set_yticks(np.arange(len(layers)), [str(v) for v in layers])
            _position_ticks(ax, position_labels)
            if row == 0:
                ax.set_title(titles[column])
            if col == 0:
                ax.set_ylabel(f"{TARGET_LABELS.get(target, target)}\nlayer")
            if row == len(targets) - 1:
                ax.set_xlabel("k at position" if "k" in probes else "position")
    for col, column in enumerate(columns):
        fig.colorbar(images[column], ax=axes[:, col], location="bottom", shrink=0.8,
                     label="held-out R²" if column != "selectivity" else "Δ R²",
                     extend="min" if column != "selectivity" else "neither")
    fig.suptitle(f"{probe} probes (layer 0 = embedding)")
    return fig


def curriculum_changes(records: Sequence[Mapping]) -> list[tuple[float, str]]:
    """(step, "d=…, n=…") at each log step where the curriculum's active dims/points changed."""
    changes, previous = [], None
    for record in records:
        stage = (record.get("curriculum_dims"), record.get("curriculum_points"))
        if stage == (None, None):
            continue
        if previous is not None and stage != previous:
            changes.append((float(record["step"]), f"d={stage[0]}, n={stage[1]}"))
        previous = stage
    return changes


@styled
def plot_training_curves(records: Sequence[Mapping], *, model_label: str = "model") -> Figure:
    """Loss, learning rate and gradient norm vs step (metrics.jsonl), curriculum stages marked."""
    steps = np.array([r["step"] for r in records], dtype=float)
    loss_key = "loss_norm" if all("loss_norm" in r for r in records) else "loss"
    panels = [(loss_key, "training loss / zero pred." if loss_key == "loss_norm"
               else "training loss (MSE)", "log"), ("lr", "learning rate", "linear"),
              ("grad_norm", "gradient norm (global L2)", "log")]
    panels = [p for p in panels if all(p[0] in r for r in records)]
    changes = curriculum_changes(records)
    fig = new_figure(FULL_WIDTH, 2.4 if changes else 2.1)
    axes = fig.subplots(1, len(panels), sharex=True, squeeze=False)[0]
    for ax, (key, label, scale) in zip(axes, panels, strict=True):
        values = np.array([r[key] for r in records], dtype=float)
        ax.plot(steps, values, color=MODEL_COLOUR, lw=1.0)
        for step, _ in changes:
            ax.axvline(step, color=GREY, lw=0.6, ls="--", zorder=1)
        ax.set_yscale(scale, **({"nonpositive": "mask"} if scale == "log" else {}))
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
    if changes:
        fig.legend(handles=[Line2D([], [], color=GREY, lw=0.6, ls="--",
                                   label=f"curriculum stage change ({len(changes)}; final stage "
                                         f"{changes[-1][1]})")], loc="outside lower center")
    fig.suptitle(f"Training of {model_label}")
    return fig
