"""Layer-by-layer figures from layerwise.json: read-out error per layer, SPD heatmaps (layer ×
iteration) per algorithm, and the best-matching iteration against layer with its fitted slope."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from icl_regression.figures.style import FULL_WIDTH, OKABE_ITO, new_figure, styled

SETTING_COLOURS = {"train": OKABE_ITO["black"], "skewed_cov": OKABE_ITO["orange"],
                   "kappa_100": OKABE_ITO["vermillion"]}
TITLES = {"newton": "Newton–Schulz", "gd": "gradient descent", "cg": "conjugate gradient",
          "online_gd": "online GD (passes)"}


def _array(grid) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in np.ravel(np.array(grid, dtype=object))],
                    float).reshape(np.shape(np.array(grid, dtype=object)))


@styled
def plot_readout_error(data: Mapping, setting: str | None = None) -> Figure:
    """Normalised error vs k of each layer's read-out: lens and refit panels."""
    block = data["settings"][setting or data["setting"]]
    fig = new_figure(FULL_WIDTH * 0.75, 2.2)
    axes = fig.subplots(1, 2, sharey=True)
    colours = [f"C{i}" for i in range(10)]
    for ax, readout in zip(axes, ("lens", "refit"), strict=True):
        errors = _array(block["readout_error"][readout])  # (L+1, n)
        for i, layer in enumerate(data["layers"]):
            ax.plot(data["k"], errors[i], color=colours[i % 10], marker=".",
                    label=f"layer {layer}")
        ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("in-context examples k")
        ax.set_title({"lens": "lens: final LN + read-out", "refit": "refit linear read-out"}
                     [readout])
    axes[0].set_ylabel("error / zero-predictor error")
    axes[1].legend(fontsize=6, ncol=2)
    return fig


@styled
def plot_match_heatmaps(data: Mapping, setting: str | None = None) -> Figure:
    """SPD (averaged over k ≥ 1) between each layer's read-out and each algorithm after t
    iterations; the best t per layer marked."""
    block = data["settings"][setting or data["setting"]]
    names = list(block["match"])
    fig = new_figure(FULL_WIDTH, 2.2)
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        entry = block["match"][name]
        spd = np.nanmean(_array(entry["spd"])[..., 1:], axis=-1)  # (L+1, T)
        spd = np.maximum(spd, 1e-6)
        image = ax.imshow(spd, origin="lower", aspect="auto", cmap="viridis_r",
                          norm=LogNorm(vmin=max(spd.min(), 1e-4), vmax=max(spd.max(), 1e-3)),
                          interpolation="nearest")
        its = entry["iterations"]
        best = [its.index(t) for t in entry["best_iteration_by_layer"]]
        ax.plot(best, np.arange(len(best)), "w*", ms=6)
        ticks = np.linspace(0, len(its) - 1, min(len(its), 6)).round().astype(int)
        ax.set_xticks(ticks, [str(its[i]) for i in ticks])
        ax.set_yticks(np.arange(len(data["layers"])), [str(v) for v in data["layers"]])
        ax.set_xlabel("iterations t")
        ax.set_title(TITLES.get(name, name))
        ax.grid(False)
        bar = fig.colorbar(image, ax=ax, location="bottom", shrink=0.8, label="SPD")
        bar.ax.xaxis.set_minor_formatter(NullFormatter())  # log scale: decade labels only
    axes[0].set_ylabel("layer (0 = embedding)")
    fig.suptitle(f"read-out ({data.get('match_readout', 'refit')}) vs iterations, "
                 f"{setting or data['setting']}; ★ best t")
    return fig


@styled
def plot_best_iteration(data: Mapping, algorithms=("newton", "gd")) -> Figure:
    """Best-matching iteration vs layer per setting, with the fitted slope (Fu et al. 2023)."""
    fig = new_figure(FULL_WIDTH * 0.75, 2.2)
    axes = fig.subplots(1, len(algorithms), squeeze=False)[0]
    layers = np.asarray(data["layers"])
    for ax, name in zip(axes, algorithms, strict=True):
        for setting, block in data["settings"].items():
            entry = block["match"].get(name)
            if entry is None:
                continue
            best = np.asarray(entry["best_iteration_by_layer"], float)
            slope = entry.get("slope", {})
            label = setting.replace("_", " ")
            if slope.get("per_layer") is not None:
                label += f": {slope['per_layer']:.2f} {slope['of']}/layer"
            colour = SETTING_COLOURS.get(setting, OKABE_ITO["blue"])
            ax.plot(layers, best, "o", color=colour, label=label, ms=3)
            if slope.get("per_layer") is not None:
                fit = slope["intercept"] + slope["per_layer"] * layers[1:]
                ax.plot(layers[1:], 2.0**fit if slope["of"] == "log2(t)" else fit, "-",
                        color=colour, lw=0.8)
        if name in ("gd", "online_gd"):
            ax.set_yscale("log", base=2)
        ax.set_xlabel("layer")
        ax.set_ylabel(f"best-matching {TITLES.get(name, name)} t")
        ax.legend(fontsize=6)
    return fig


def layerwise_figures(data: Mapping | None):
    """(file stem, builder) for the figures/app.py per-run list; nothing without the file (the
    run record's layerwise.json)."""
    if data is None:
        return
    yield "layerwise_readout", lambda: plot_readout_error(data)
    for setting in data["settings"]:
        suffix = "" if setting == data["setting"] else f"_{setting}"
        yield f"layerwise_match{suffix}", lambda s=setting: plot_match_heatmaps(data, s)
    yield "layerwise_best_iteration", lambda: plot_best_iteration(data)
