"""One figure per experiment, from the JSON records the experiment loops wrote.

Each function takes a list of records (`{"label", "step", "results": {...}}`, one per run) and
returns a pyplot-free Figure in the project style; `style.save_figure` writes it. Models
of different sizes or training settings get ordered colours (viridis); baselines keep their
baseline's colour and a broken line in every figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from icl_regression.figures.plots import K_LABEL, curve
from icl_regression.figures.style import (
    BAND_ALPHA,
    BASELINE_COLOURS,
    FULL_WIDTH,
    GREY,
    ONE_COLUMN,
    baseline_style,
    model_colours,
    new_figure,
    styled,
)

ERROR_LABEL = "squared error / zero pred."
def _line(ax, xs, value, colour, linestyle="-", label=None, band=True, marker=None, lw=1.2):
    mean, lo, hi = curve(value)
    ax.plot(xs, mean, color=colour, ls=linestyle, label=label, marker=marker, ms=3, lw=lw)
    if band and lo is not None and hi is not None:
        ax.fill_between(xs, lo, hi, color=colour, alpha=BAND_ALPHA, lw=0)


def _mean_over_k(value) -> float:
    """Error averaged over k = 1..n−1 (k = 0 has no context and is the same for everyone)."""
    return float(np.nanmean(curve(value)[0][1:]))


def _floor(ax, floor: float = 1e-4) -> None:
    """Errors below `floor` are exact fits up to rounding (OLS at k ≥ d on noiseless tasks):
    cut the log axis there instead of stretching it over rounding noise."""
    low, high = ax.get_ylim()
    if low < floor < high:
        ax.set_ylim(floor, high)
        ax.text(0.02, 0.02, f"cut at {floor:g} (exact below)",
                transform=ax.transAxes, fontsize=6, color=GREY)


def _legend(fig: Figure, axes, ncol: int = 3) -> None:
    handles, labels = {}, []
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    fig.legend([handles[k] for k in labels], labels, loc="outside lower center",
               ncol=min(len(labels), ncol))


def _one_panel() -> tuple[Figure, object]:
    fig = new_figure(ONE_COLUMN + 0.9, 2.9)
    return fig, fig.subplots()


def _finish_one_panel(fig: Figure, ax) -> Figure:
    """Log error axis vs k, cut at the exact-fit floor, legend below."""
    ax.set_yscale("log")
    ax.set_xlabel(K_LABEL)
    ax.set_ylabel(ERROR_LABEL)
    _floor(ax)
    _legend(fig, [ax], ncol=2)
    return fig


def _results(records: Sequence[Mapping]) -> list[Mapping]:
    return [r["results"] for r in records]


@styled
def plot_task_diversity(records: Sequence[Mapping]) -> Figure:
    """Error on fresh tasks vs pool size M, and SPD to dMMSE and to ridge λ* vs M."""
    rows = sorted(_results(records), key=lambda r: (r["pool_size"] == 0, r["pool_size"]))
    finite = [r["pool_size"] for r in rows if r["pool_size"] > 0]
    top = max(finite) * 8 if finite else 1
    ms = np.array([r["pool_size"] or top for r in rows], float)  # M = 0 (fresh w) drawn at ∞
    fig = new_figure(FULL_WIDTH, 2.7)
    err_ax, spd_ax = fig.subplots(1, 2)
    fresh = [r["settings"]["fresh"] for r in rows]
    err = lambda s, name: _mean_over_k(s["error"][name]) if name in s["error"] else np.nan
    err_ax.plot(ms, [err(s, "model") for s in fresh], "o-", color="black", ms=3,
                label="model, fresh tasks")
    pool = [r["settings"].get("pool", r["settings"]["fresh"]) for r in rows]
    err_ax.plot(ms, [err(s, "model") for s in pool], "s--", color="black", ms=3, mfc="white",
                label="model, pool tasks")
    for name in ("dmmse", "ridge(lam=bayes)"):
        colour, ls, label = baseline_style(name)
        err_ax.plot(ms, [err(s, name) for s in fresh], ls, color=colour, marker=".",
                    label=f"{label}, fresh tasks")
    for name, marker in (("dmmse", "o"), ("ridge(lam=bayes)", "s")):
        colour, ls, label = baseline_style(name)
        values = [np.nanmean(s["spd"][name][1:]) if name in s["spd"] else np.nan for s in fresh]
        spd_ax.plot(ms, values, ls="-", marker=marker, color=colour, ms=3,
                    label=f"SPD(model, {label})")
    for ax, title in ((err_ax, "error on fresh tasks (mean over k ≥ 1)"),
                      (spd_ax, "distance to each Bayes predictor (fresh tasks)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tasks in the training pool M")
        ax.set_title(title)
        ticks = list(ms)
        ax.set_xticks(ticks, [f"{int(m)}" if m != top else "∞" for m in ticks])
        ax.minorticks_off()
    err_ax.set_ylabel(ERROR_LABEL)
    spd_ax.set_ylabel("SPD / zero pred.")
    _legend(fig, [err_ax, spd_ax])
    return fig


@styled
def plot_scale(records: Sequence[Mapping]) -> Figure:
    """Error at k = d/2, d, 2d vs parameter count; least squares and averaging as lines."""
    rows = sorted(_results(records), key=lambda r: r["n_params"])
    d, n = rows[0]["d"], len(rows[0]["k"])
    ks = [k for k in dict.fromkeys((max(1, d // 2), d, 2 * d)) if k < n]
    depths = sorted({r["n_layer"] for r in rows})
    colours = dict(zip(depths, model_colours(len(depths)), strict=True))
    fig = new_figure(FULL_WIDTH, 2.6)
    axes = np.atleast_1d(fig.subplots(1, len(ks), sharey=True))
    for ax, k in zip(axes, ks, strict=True):
        for depth in depths:
            group = [r for r in rows if r["n_layer"] == depth]
            ax.plot([r["n_params"] for r in group],
                    [curve(r["error"]["model"])[0][k] for r in group], "o-", ms=3,
                    color=colours[depth], label=f"model, {depth} layer{'s' * (depth > 1)}")
        for name in ("ols", "averaging"):
            colour, ls, label = baseline_style(name)
            ax.axhline(curve(rows[0]["error"][name])[0][k], color=colour, ls=ls, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _floor(ax)
        ax.set_xlabel("parameters")
        ax.set_title(f"k = {k}" + (" = d" if k == d else f" ({k / d:g} d)"))
    axes[0].set_ylabel(ERROR_LABEL)
    _legend(fig, axes)
    return fig


@styled
def plot_prior_override(records: Sequence[Mapping]) -> Figure:
    """Tasks around −μ after training around +μ: error and SPD to the prior-mean predictor
    vs k per model size, and the in-distribution error for reference."""
    rows = sorted(_results(records), key=lambda r: r["n_params"])
    colours = model_colours(len(rows))
    fig = new_figure(FULL_WIDTH, 2.7)
    axes = fig.subplots(1, 3)
    panels = (("flipped", "error", "w around −μ: error"),
              ("flipped", "spd_prior_mean", "w around −μ: SPD to x·μ"),
              ("train", "error", "w around +μ (training): error"))
    for ax, (setting, key, title) in zip(axes, panels, strict=True):
        first = rows[0]["settings"][setting][key]
        ks = np.array(rows[0]["k"])
        for row, colour in zip(rows, colours, strict=True):
            _line(ax, ks, row["settings"][setting][key]["model"], colour, lw=1.8,
                  label=f"model, {row['n_layer']}L×{row['d_model']} ({row['n_params']:,} params)")
        for name in ("ols", "prior_mean", "bayes_train_prior"):
            if name in first:
                colour, ls, label = baseline_style(name)
                _line(ax, ks, first[name], colour, ls, label=label, band=False)
        ax.axvline(rows[0]["d"], color=GREY, lw=0.8, ls=":")
        ax.set_yscale("log")
        _floor(ax)
        ax.set_xlabel(K_LABEL)
        ax.set_title(title)
    axes[0].set_ylabel(ERROR_LABEL)
    axes[1].set_ylabel("SPD / zero pred.")
    fig.suptitle(f"Prior override: trained with ‖μ‖ = {rows[0]['w_mean']:g}")
    _legend(fig, axes)
    return fig


@styled
def plot_corrupted_demos(records: Sequence[Mapping]) -> Figure:
    """Error at the last query vs the fraction of corrupted demonstration labels."""
    rows = sorted(_results(records), key=lambda r: r["train_corrupt_fraction"])
    modes = list(rows[0]["modes"])
    colours = model_colours(len(rows))
    fig = new_figure(FULL_WIDTH if len(modes) > 1 else ONE_COLUMN + 0.6, 2.8)
    axes = np.atleast_1d(fig.subplots(1, len(modes), sharey=True))
    titles = {"noise": "labels replaced by noise", "other_w": "labels of another task's w"}
    for ax, mode in zip(axes, modes, strict=True):
        fractions = np.array(rows[0]["fractions"])
        for row, colour in zip(rows, colours, strict=True):
            trained = (f"trained with {row['train_corrupt_fraction']:g} "
                       f"{row['train_corrupt_mode']}" if row["train_corrupt_fraction"] else
                       "trained clean")
            _line(ax, fractions, row["modes"][mode]["error"]["model"], colour, marker="o",
                  lw=1.8, label=f"model, {trained}")
        for name, value in rows[0]["modes"][mode]["error"].items():
            if name != "model":
                colour, ls, label = baseline_style(name)
                _line(ax, fractions, value, colour, ls, label=label, marker=".")
        ax.set_ylim(bottom=0)  # linear: the errors span one decade at most here
        ax.set_xlabel(f"corrupted fraction of the k = {rows[0]['k']} demonstrations")
        ax.set_title(titles.get(mode, mode))
    axes[0].set_ylabel(ERROR_LABEL + " (clean query)")
    _legend(fig, axes)
    return fig


@styled
def plot_order_sensitivity(records: Sequence[Mapping]) -> Figure:
    """Variance of the prediction over orders of the same demonstrations: vs k per checkpoint
    (one run) or at the last checkpoint (several), and averaged over k vs training step."""
    fig = new_figure(FULL_WIDTH, 2.8)
    k_ax, step_ax = fig.subplots(1, 2)
    single = len(records) == 1
    for record, colour in zip(records, model_colours(len(records)), strict=True):
        row = record["results"]
        by_step = row["variance"]["model"]
        steps = sorted(int(s) for s in by_step)
        shown = steps if single else steps[-1:]
        for step, shade in zip(shown, model_colours(len(shown)) if single else [colour],
                               strict=True):
            k_ax.plot(row["k"], by_step[str(step)], "o-", ms=3, color=shade,
                      label=f"model, step {step}" + ("" if single else f" ({record['label']})"))
        step_ax.plot(steps, [np.mean(by_step[str(s)]) for s in steps], "o-", ms=3,
                     color=colour, label=f"model ({record['label']})")
    first = records[0]["results"]
    error = curve(first["error"]["model"])[0]  # k = 1..n−1
    k_ax.plot(first["error_k"], error, color=GREY, ls="--",
              label="model's squared error (last step)")
    k_ax.text(0.98, 0.04, f"OLS (order-invariant): variance ≤ {max(first['variance']['ols']):.0e}",
              transform=k_ax.transAxes, ha="right", va="bottom", color=BASELINE_COLOURS["ols"])
    for ax in (k_ax, step_ax):
        ax.set_yscale("log")
        ax.set_ylabel("variance over orders / E y²")
    k_ax.set_xlabel(K_LABEL)
    k_ax.set_title(f"{first['permutations']} random orders × {first['prompts']} prompts")
    step_ax.set_xlabel("training step")
    step_ax.set_title("mean over k, per checkpoint")
    _legend(fig, [k_ax, step_ax])
    return fig


@styled
def plot_demo_selection(records: Sequence[Mapping]) -> Figure:
    """Error vs k with the k nearest vs k random pool examples as demonstrations."""
    fig, ax = _one_panel()
    colours = model_colours(len(records))
    first = records[0]["results"]
    ks = np.array(first["k"])
    for record, colour in zip(records, colours, strict=True):
        row = record["results"]
        suffix = f" ({record['label']})" if len(records) > 1 else ""
        _line(ax, ks, row["error"]["nearest"]["model"], colour, "-", lw=1.8,
              label=f"model{suffix}, k nearest")
        _line(ax, ks, row["error"]["random"]["model"], colour, "--", lw=1.8,
              label=f"model{suffix}, k random")
    colour, _, label = baseline_style("ols")
    _line(ax, ks, first["error"]["nearest"]["ols"], colour, "-", label=f"{label}, k nearest")
    _line(ax, ks, first["error"]["random"]["ols"], colour, "--", label=f"{label}, k random")
    ax.set_title(f"demonstrations chosen from {first['pool_points']} labelled examples")
    return _finish_one_panel(fig, ax)


@styled
def plot_long_context(records: Sequence[Mapping]) -> Figure:
    """Error vs k beyond the training length (shaded)."""
    fig, ax = _one_panel()
    rows = sorted(_results(records), key=lambda r: (r["positions"], r["max_len"]))
    for row, colour in zip(rows, model_colours(len(rows)), strict=True):
        scheme = ("no positional embedding" if row["positions"] == "none" else
                  f"learned positions, table {row['max_len']}")
        _line(ax, np.array(row["k"]), row["error"]["model"], colour, lw=1.8,
              label=f"model, {scheme}")
    longest = max(rows, key=lambda r: r["n_points"])
    for name, value in longest["error"].items():
        if name != "model":
            colour, ls, label = baseline_style(name)
            _line(ax, np.array(longest["k"]), value, colour, ls, label=label, band=False)
    trained = rows[0]["train_points"]
    ax.axvspan(trained - 0.5, longest["n_points"] - 0.5, color=GREY, alpha=0.15, lw=0,
               label=f"beyond training (k ≥ {trained})")
    return _finish_one_panel(fig, ax)
