"""Function-class figures from eval.json only: error/accuracy vs k, and error per component."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from icl_regression.figures.plots import ERROR_FLOOR, K_LABEL, curve
from icl_regression.figures.style import (
    BAND_ALPHA,
    FULL_WIDTH,
    GREY,
    MODEL,
    distinct_colours,
    new_figure,
    save_figure,
    styled,
)

# Per component: the model against these (oracle: that component's own best predictor).
SELECTION = (MODEL, "oracle", "mixture_bayes")


def _panel(ax, ks, curves: Mapping[str, object], names: Sequence[str], colours) -> None:
    for name, colour in zip(names, colours, strict=True):
        if name not in curves:
            continue
        mean, lo, hi = curve(curves[name])
        ax.plot(ks, mean, color=colour, lw=1.8 if name in (MODEL, "oracle") else 1.1,
                ls="-" if name in SELECTION else "--", label=name)
        if lo is not None and hi is not None and name in SELECTION:  # other bands would clutter
            ax.fill_between(ks, lo, hi, color=colour, alpha=BAND_ALPHA, lw=0)


def _names(error: Mapping[str, object], skip: Sequence[str] = ()) -> list[str]:
    first = [n for n in SELECTION if n in error]
    return first + [n for n in error if n not in first and n not in skip]


@styled
def plot_family_errors(data: Mapping, setting: str = "train") -> Figure:
    """Error vs k of the model and every baseline eval.json holds (plus accuracy for ±1
    labels): the README figure of one function-class run."""
    block = data["settings"][setting]
    ks = np.array(block["k"], dtype=float)
    names = _names(block["error"])
    colours = distinct_colours(names)
    panels = 2 if "accuracy" in block else 1
    fig = new_figure(FULL_WIDTH if panels == 2 else 4.2, 2.9)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    _panel(axes[0], ks, block["error"], names, colours)
    axes[0].axhline(1.0, color=GREY, lw=0.8, ls=(0, (1, 1)))
    axes[0].axvline(data["task"]["d"], color=GREY, lw=0.8, ls=":")
    axes[0].set(yscale="log", ylim=(max(ERROR_FLOOR, 1e-3), 10), xlabel=K_LABEL,
                ylabel="squared error / zero pred.")
    if panels == 2:
        _panel(axes[1], ks, block["accuracy"], names, colours)
        axes[1].set(xlabel=K_LABEL, ylabel="accuracy (sign)", ylim=(0.4, 1.0))
    family = data.get("family", {}).get("name", data["task"].get("family", "linear"))
    fig.suptitle(f"{family}: d = {data['task']['d']}, {data['n_prompts']:,} prompts")
    axes[0].legend(loc="lower left", fontsize=6, ncol=2)
    return fig


@styled
def plot_components(data: Mapping, ridge_prefix: str = "ridge(") -> Figure:
    """One panel per mixture component: the model, the component's oracle, the mixture Bayes
    predictor and each single-λ ridge (dashed), on that component's prompts."""
    block = data["settings"]["train"]
    comps = block["components"]
    ks = np.array(block["k"], dtype=float)
    fig = new_figure(FULL_WIDTH, 2.4)
    axes = fig.subplots(1, len(comps), sharey=True, squeeze=False)[0]
    names = _names(next(iter(comps.values()))["error"])
    names = [n for n in names if n in SELECTION or n.startswith(ridge_prefix)]
    colours = distinct_colours(names)
    for ax, (label, comp) in zip(axes, comps.items(), strict=True):
        _panel(ax, ks, comp["error"], names, colours)
        # Floored as the family figure is: an exact oracle's 1e-14 would flatten the rest.
        ax.set(yscale="log", ylim=(max(ERROR_FLOOR, 1e-3), 10),
               title=f"{label} ({comp['n_prompts']} prompts)", xlabel=K_LABEL)
    axes[0].set_ylabel("squared error / component's zero pred.")
    axes[0].legend(loc="upper right", fontsize=6)
    fig.suptitle("Algorithm selection: error per mixture component")
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m icl_regression.figures.mixture EVAL_JSON OUT_STEM`: the figures of one run."""
    eval_path, stem = (argv or sys.argv[1:])[:2]
    data = json.loads(Path(eval_path).read_text())
    save_figure(plot_family_errors(data), Path(stem), ("png",), dpi=110)
    if "components" in data["settings"].get("train", {}):
        save_figure(plot_components(data), Path(f"{stem}_components"), ("png",), dpi=110)


if __name__ == "__main__":
    main()
