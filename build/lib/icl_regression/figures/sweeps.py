"""Sweep summaries: which algorithm a model is closest to, across depth and across label noise.

* Depth sweep (runs differing only in `model.n_layer`): for each depth and k, the baseline with
  the lowest SPD to the model (Akyürek et al. 2022 report shallow ≈ GD, middle ≈ ridge,
  deep ≈ OLS).
* Noise sweep (runs differing only in `task.noise_std`): the ridge λ of eval.json's grid whose
  predictions are closest to the model's (lowest SPD averaged over k ≥ 1), against the Bayes
  λ* = σ² d / τ² of each run's task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from icl_regression.figures.plots import K_LABEL, curve
from icl_regression.figures.style import (
    FULL_WIDTH,
    GREY,
    OKABE_ITO,
    as_float,
    distinct_colours,
    new_figure,
    parse_predictor_name,
    predictor_label,
    styled,
)

# Cell text is white on these colours, black on the lighter ones.
DARK = {OKABE_ITO["black"], OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["green"]}
# Keys that never make two runs belong to different experiments.
IGNORED_KEYS = ("progress", "tensorboard", "log_every", "ckpt_every", "keep_checkpoints",
                "keep_period", "mesh.")


def flatten(config: Mapping, prefix: str = "") -> dict[str, object]:
    """{"task": {"d": 5}} -> {"task.d": 5} (lists become tuples so values are hashable)."""
    flat: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def group_sweeps(configs: Mapping[str, Mapping], key: str) -> list[list[str]]:
    """Groups of run ids whose configs differ only in `key` (≥ 2 distinct values), by value.

    A value seen twice in a group (a repeated run) keeps the first run id in sorted order.
    """
    groups: dict[tuple, dict[object, str]] = {}
    for run_id in sorted(configs):
        flat = flatten(configs[run_id])
        if key not in flat:
            continue
        rest = tuple(sorted((k, repr(v)) for k, v in flat.items()
                            if k != key and not k.startswith(IGNORED_KEYS)))
        groups.setdefault(rest, {}).setdefault(flat[key], run_id)
    return [[by_value[v] for v in sorted(by_value)] for by_value in groups.values()
            if len(by_value) >= 2]


def closest_baselines(spd_by_depth: Mapping[int, Mapping[str, object]], baselines: Sequence[str]
                      ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Per depth and k, the index into `baselines` of the lowest SPD, and that SPD.

    `spd_by_depth[depth]` is eval.json's `spd` dict of one run. Returns depths (sorted),
    best (n_depth, n_k) int and best_spd (n_depth, n_k); NaN SPDs never win.
    """
    depths = sorted(spd_by_depth)
    best, best_spd = [], []
    for depth in depths:
        missing = [b for b in baselines if b not in spd_by_depth[depth]]
        if missing:
            raise ValueError(f"depth {depth}: eval.json has no SPD for {', '.join(missing)}")
        table = np.stack([curve(spd_by_depth[depth][b])[0] for b in baselines])  # (n_base, n_k)
        table = np.where(np.isnan(table), np.inf, table)
        best.append(np.argmin(table, axis=0))
        best_spd.append(np.min(table, axis=0))
    return depths, np.stack(best), np.stack(best_spd)


@styled
def plot_depth_sweep(depths: Sequence[int], ks: Sequence[float], baselines: Sequence[str],
                     best: np.ndarray, best_spd: np.ndarray, *,
                     bayes_lambda: float | None = None, annotate_max_k: int = 16) -> Figure:
    """Categorical heatmap: the closest baseline (lowest SPD) per depth (rows) and k (columns)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    colours = distinct_colours(baselines)
    fig = new_figure(FULL_WIDTH, min(4.0, 0.9 + 0.35 * len(depths)))
    ax = fig.subplots()
    norm = BoundaryNorm(np.arange(len(baselines) + 1) - 0.5, len(baselines))
    ax.imshow(best, cmap=ListedColormap(colours), norm=norm, origin="lower", aspect="auto",
              interpolation="nearest")
    ax.grid(False)
    if len(ks) <= annotate_max_k:  # the SPD value itself, where cells are wide enough to read
        for (row, col), value in np.ndenumerate(best_spd):
            ax.text(col, row, f"{value:.2g}", ha="center", va="center", fontsize=5.5,
                    color="white" if colours[best[row, col]] in DARK else "black")
    step = max(1, int(np.ceil(len(ks) / 12)))
    ax.set_xticks(np.arange(0, len(ks), step), [f"{ks[i]:g}" for i in range(0, len(ks), step)])
    ax.set_yticks(np.arange(len(depths)), [str(d) for d in depths])
    ax.set_xlabel(K_LABEL)
    ax.set_ylabel("layers")
    shown = sorted(set(best.ravel().tolist()))
    ax.legend(handles=[Patch(color=colours[i], label=predictor_label(baselines[i], bayes_lambda))
                       for i in shown], loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0)
    ax.set_title("Baseline closest to the model (lowest SPD) per depth and k")
    return fig


def ridge_lambda_spd(spd: Mapping[str, object], ks: Sequence[float]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(λ grid sorted, SPD(model, ridge λ) averaged over k ≥ 1) from one run's `spd` dict.

    Only numeric λ entries count (the Bayes entry is the reference, not a candidate); k = 0 is
    left out because every ridge predicts 0 there.
    """
    used = np.array(ks, dtype=float) >= 1
    lams, means = [], []
    for name, values in spd.items():
        family, params = parse_predictor_name(name)
        lam = as_float(params.get("lam", params.get("value")))
        if family == "ridge" and lam is not None:
            lams.append(lam)
            means.append(float(np.nanmean(curve(values)[0][used])))
    order = np.argsort(lams)
    return np.array(lams)[order], np.array(means)[order]


def _lambda_scale(ax, which: str, values: Sequence[float]) -> None:
    """Log scale for λ on axis `which` ("x"/"y"); symmetric-log when λ = 0 must show too."""
    positive = [v for v in values if v > 0]
    if positive and len(positive) == len(values):
        getattr(ax, f"set_{which}scale")("log")
        return
    linthresh = min(positive) if positive else 1e-3
    getattr(ax, f"set_{which}scale")("symlog", linthresh=linthresh)
    getattr(ax, f"set_{which}lim")(-0.1 * linthresh, None)


@styled
def plot_noise_sweep(runs: Sequence[Mapping]) -> Figure:
    """Best-matching ridge λ vs Bayes λ*, and SPD(model, ridge λ) vs λ for each noise level.

    Each entry of `runs`: noise_std, bayes_lambda, lams (grid), spd (mean SPD per λ).
    """
    from matplotlib import colormaps

    fig = new_figure(FULL_WIDTH, 2.5)
    left, right = fig.subplots(1, 2)
    colours = colormaps["cividis"](np.linspace(0.0, 0.85, len(runs)))
    lams_all = [v for r in runs for v in (*r["lams"], r["bayes_lambda"])]
    for colour, run in zip(colours, runs, strict=True):
        lams, spd = np.asarray(run["lams"]), np.asarray(run["spd"])
        best = np.nanargmin(spd)
        label = f"σ = {run['noise_std']:g}"
        left.scatter(run["bayes_lambda"], lams[best], color=colour, s=22, zorder=3, label=label)
        right.plot(lams, spd, color=colour, marker="o", ms=2.5, label=label)
        right.scatter(lams[best], spd[best], color=colour, s=40, marker="*", zorder=3)
        right.axvline(run["bayes_lambda"], color=colour, lw=0.8, ls=":")
    diagonal = np.geomspace(max(min(v for v in lams_all if v > 0), 1e-6) / 2,
                            max(lams_all) * 2, 50) if max(lams_all) > 0 else np.zeros(2)
    left.plot(diagonal, diagonal, color=GREY, lw=0.8, ls="--", label="best λ = λ*")
    _lambda_scale(left, "x", lams_all)
    _lambda_scale(left, "y", lams_all)
    _lambda_scale(right, "x", lams_all)
    right.set_yscale("log", nonpositive="mask")
    left.set_xlabel("Bayes λ* = σ² d / τ²")
    left.set_ylabel("ridge λ closest to the model")
    left.legend(loc="upper left")
    right.set_xlabel("ridge λ (dotted: each run's λ*; star: closest)")
    right.set_ylabel("SPD(model, ridge λ), mean over k ≥ 1")
    left.set_title("Best-matching ridge λ vs Bayes λ*")
    right.set_title("Distance to ridge across the λ grid")
    return fig
