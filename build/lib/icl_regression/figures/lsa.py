"""The linear-self-attention figures (von Oswald et al. 2022), drawn from `lsa_numbers.json`
(written by icl_regression.analysis.lsa) in the project style."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from icl_regression.figures.style import (
    BASELINE_COLOURS,
    GREY,
    OKABE_ITO,
    ONE_COLUMN,
    new_figure,
    save_figure,
    styled,
)

ERROR = "squared error / E y²"
TRAINED, GD = BASELINE_COLOURS["model"], BASELINE_COLOURS["gd"]


@styled
def plot_loss_curve(single: Mapping) -> Figure:
    """Trained loss over training (training batches and held-out) vs optimal-η one-step GD."""
    fig = new_figure(ONE_COLUMN * 1.5, 2.4)
    ax = fig.subplots()
    ax.plot(*zip(*single["train_curve"], strict=True), color=GREY, lw=0.8,
            label="trained LSA (training batches)")
    ax.plot([c["step"] for c in single["curve"]], [c["loss"] for c in single["curve"]],
            "o-", ms=2.5, color=TRAINED, label="trained LSA (held-out)")
    ax.axhline(single["gd_loss"], color=GD, ls="--",
               label=f"one GD step, optimal η = {single['eta']:.3f}")
    ax.set(xlabel="training step", ylabel=f"{ERROR}  (query, N pairs)", yscale="log",
           title="1-layer linear self-attention vs one GD step")
    ax.legend()
    return fig


@styled
def plot_sensitivity(single: Mapping) -> Figure:
    """Cosine and relative L2 distance between ∂ŷ/∂x_query of the LSA and of GD."""
    fig = new_figure(ONE_COLUMN * 1.5, 2.4)
    ax = fig.subplots()
    steps = [c["step"] for c in single["curve"]]
    cosines = [c["cosine"] for c in single["curve"]]
    ax.plot(steps, cosines, "o-", ms=2.5, color=OKABE_ITO["blue"])
    ax.set(xlabel="training step", ylim=(min(0.0, min(cosines)), 1.02),
           title="sensitivity alignment with one GD step")
    ax.set_ylabel("cosine(∂ŷ/∂x_q of LSA, of GD)", color=OKABE_ITO["blue"])
    twin = ax.twinx()
    twin.plot(steps, [c["l2_rel"] for c in single["curve"]], "s-", ms=2,
              color=OKABE_ITO["orange"])
    twin.set_ylabel("‖∂ŷ_LSA/∂x_q − ∂ŷ_GD/∂x_q‖ / ‖∂ŷ_GD/∂x_q‖", color=OKABE_ITO["orange"])
    twin.grid(False)
    return fig


@styled
def plot_interpolation(single: Mapping) -> Figure:
    """Loss along the straight path from the rescaled trained weights to the construction."""
    fig = new_figure(ONE_COLUMN * 1.5, 2.4)
    ax = fig.subplots()
    ax.plot(single["alphas"], single["interpolation"], "o-", ms=3, color=TRAINED)
    ax.axhline(single["gd_loss"], color=GD, ls="--", label="GD construction")
    spread = max(max(abs(v / single["gd_loss"] - 1) for v in single["interpolation"]), 0.02)
    ax.set(xlabel="α  (0: trained, rescaled; 1: GD construction)", ylabel=ERROR,
           title="interpolating trained → constructed weights",
           ylim=(single["gd_loss"] * (1 - 1.2 * spread), single["gd_loss"] * (1 + 1.2 * spread)))
    ax.legend()
    return fig


DEPTH_SERIES = (("untied", "trained LSA", "o-", TRAINED),
                ("tied", "trained LSA, tied", "s--", OKABE_ITO["blue"]),
                ("gd", "GD, k steps (optimal η)", "^-", GD),
                ("gd_pp", "GD++ (fitted η_l, γ_l)", "v-", OKABE_ITO["vermillion"]))


@styled
def plot_depth(rows: Sequence[Mapping]) -> Figure:
    """Loss vs depth (mean and median over prompts): trained LSA, k-step GD and GD++."""
    fig = new_figure(ONE_COLUMN * 2, 2.6)
    axes = fig.subplots(1, 2)
    depths = [r["depth"] for r in rows]
    for ax, suffix, stat in zip(axes, ("", "_median"), ("mean", "median"), strict=True):
        for key, label, style, colour in DEPTH_SERIES:
            pairs = [(d, r[key + suffix]) for d, r in zip(depths, rows, strict=True)
                     if r.get(key + suffix) is not None]
            if pairs:
                ax.plot(*zip(*pairs, strict=True), style, ms=4, color=colour, label=label)
        ax.set(xlabel="layers = GD steps", ylabel=f"{stat} {ERROR}", yscale="log",
               xticks=depths, title=f"loss vs depth ({stat} over prompts)")
    axes[0].legend()
    return fig


def save_lsa_figures(numbers: Mapping, out: Path, formats: Sequence[str] = ("png",),
                     dpi: int = 150) -> list[Path]:
    """The four LSA figures of `lsa_numbers.json` into `out/lsa_*.<fmt>`."""
    single = numbers["single"]
    figures = {"lsa_loss_curve": plot_loss_curve(single),
               "lsa_sensitivity": plot_sensitivity(single),
               "lsa_interpolation": plot_interpolation(single),
               "lsa_depth": plot_depth(numbers["depth"])}
    return [path for name, fig in figures.items()
            for path in save_figure(fig, Path(out) / name, formats, dpi)]
