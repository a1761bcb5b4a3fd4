"""The architecture comparison's figure and the selection it and docs/architectures.md share:
for every (model variant, task) the run with the lowest error averaged over k (the learning
rate sweep's winner), from the records `experiments/architectures.py` wrote.

Plain NumPy on JSON records (no JAX, no model code), as every figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from icl_regression.figures.plots import K_LABEL, curve
from icl_regression.figures.style import (
    BAND_ALPHA,
    FULL_WIDTH,
    GREY,
    baseline_style,
    distinct_colours,
    new_figure,
    styled,
)

TASKS = ("linear", "sparse_linear", "decision_tree")
ERROR_LABEL = "squared error / zero pred."


def variant(result: Mapping) -> str:
    """The model as the comparison names it: its name, `+curriculum` when trained so."""
    return result["model"] + (" +curriculum" if result.get("curriculum") else "")


def mean_error(result: Mapping) -> float:
    """The model's error averaged over k = 1..n−1: what the learning-rate sweep minimises."""
    return float(np.nanmean(curve(result["error"]["model"])[0][1:]))


def best_runs(records: Sequence[Mapping]) -> dict[tuple[str, str], Mapping]:
    """(variant, task family) -> the result of its best run (lowest mean error)."""
    best: dict[tuple[str, str], Mapping] = {}
    for record in records:
        result = record["results"]
        key = (variant(result), result["family"])
        if key not in best or mean_error(result) < mean_error(best[key]):
            best[key] = result
    return best


def at_k(value, k: int) -> float:
    values = curve(value)[0]
    return float(values[k]) if k < len(values) else float("nan")


def _draw(ax, ks, value, colour, label, ls="-", band=True):
    mean, lo, hi = curve(value)
    ax.plot(ks[:len(mean)], mean, color=colour, ls=ls, lw=1.0, label=label)
    if band and lo is not None:
        ax.fill_between(ks[:len(mean)], lo, hi, color=colour, alpha=BAND_ALPHA, lw=0)


def _panel_error_vs_k(ax, runs: dict, colours: dict, family: str, long: bool) -> None:
    shown = {v: r for (v, f), r in runs.items() if f == family}
    baselines_from = None
    for name, result in shown.items():
        block = result["extrapolation"] if long else result
        if "error" not in block:
            continue
        ks = np.arange(len(curve(block["error"]["model"])[0]))
        _draw(ax, ks, block["error"]["model"], colours[name], name, band=not long)
        baselines_from = baselines_from or block
    if baselines_from is not None:
        for base, value in baselines_from["error"].items():
            if base != "model":
                colour, ls, label = baseline_style(base)
                ks = np.arange(len(curve(value)[0]))
                _draw(ax, ks, value, colour, label, ls=ls, band=False)
    if long and shown:
        ax.axvline(next(iter(shown.values()))["n_points"] - 1, color=GREY, lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 3)
    ax.set_title(family.replace("_", " ") + (", longer prompts" if long else ""), fontsize=8)
    ax.set_xlabel(K_LABEL)


def _panel_layers(ax, runs: dict, colours: dict) -> None:
    """Lens error at the last k per layer (depth as a fraction), linear task."""
    for (name, family), result in runs.items():
        if family != "linear":
            continue
        last = [at_k(layer, 2 * result["d"]) for layer in result["layers"]]
        depth = np.linspace(0, 1, len(last))
        ax.plot(depth, last, "o-", ms=2, lw=0.8, color=colours[name], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("layer / number of layers")
    ax.set_title("lens read-out per layer, linear, k = 2d", fontsize=8)


def _panel_loops(ax, runs: dict, colours: dict) -> None:
    for (name, family), result in runs.items():
        loops = result.get("loops")
        if family != "linear" or not loops:
            continue
        k = 2 * result["d"]
        ax.plot(loops["loops"], [at_k(e, k) for e in loops["error"]], "o-", ms=2,
                color=colours[name], label=name)
        ax.axvline(loops["trained"], color=colours[name], lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("loops at evaluation")
    ax.set_title("looped: error at k = 2d vs loops", fontsize=8)


def _panel_cost(ax, runs: dict, colours: dict) -> None:
    costs = [(name, r["cost"]) for (name, f), r in runs.items() if f == "linear" and r.get("cost")]
    for i, (name, cost) in enumerate(costs):
        ax.barh(i, cost["forward_s"] * 1e3, color=colours[name])
    ax.set_yticks(range(len(costs)), [name for name, _ in costs], fontsize=6)
    ax.set_xscale("log")
    points = costs[0][1]["n_points"] if costs else "?"
    ax.set_xlabel("forward ms (untrained copy)")
    ax.set_title(f"one forward pass, {points} points", fontsize=8)


@styled
def plot_architectures(records: Sequence[Mapping]) -> Figure:
    """Per task: error vs k at the training length and beyond it; the lens read-out per layer,
    a looped model's error vs loops, and the long-prompt forward time."""
    runs = best_runs(records)
    names = sorted({name for name, _ in runs})
    colours = dict(zip(names, distinct_colours(names), strict=True))
    families = [f for f in TASKS if any(f == family for _, family in runs)] or sorted(
        {family for _, family in runs})
    fig = new_figure(FULL_WIDTH, 7.5)
    axes = fig.subplots(3, max(3, len(families)), squeeze=False)
    for column, family in enumerate(families):
        _panel_error_vs_k(axes[0, column], runs, colours, family, long=False)
        _panel_error_vs_k(axes[1, column], runs, colours, family, long=True)
    axes[0, 0].set_ylabel(ERROR_LABEL)
    axes[1, 0].set_ylabel(ERROR_LABEL)
    _panel_layers(axes[2, 0], runs, colours)
    _panel_loops(axes[2, 1], runs, colours)
    _panel_cost(axes[2, 2], runs, colours)
    handles, labels = {}, []
    for ax in np.ravel(axes[:2]):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    fig.legend([handles[k] for k in labels], labels, loc="outside lower center", ncol=5,
               fontsize=6)
    return fig
