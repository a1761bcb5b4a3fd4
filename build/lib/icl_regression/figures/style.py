"""One figure style for the whole project: palette, sizes, predictor names, deterministic saving.

Colours follow the Okabe–Ito palette (distinguishable with the common colour-vision
deficiencies); each baseline keeps its colour in every figure. Sizes and fonts are those
of a two-column paper: 3.3 in for one column, 6.9 in for the full width, 8 pt text.

Predictor names are the keys of eval.json, e.g. `model`, `ols`, `averaging`, `ridge(lam=0.1)`,
`ridge(lam=bayes)`, `gd(steps=1)`, `knn(k=3)`; `parse_predictor_name` is the only place that
knows this format.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from icl_regression.storage import write_atomically

MODEL = "model"  # the trained network's key in eval.json's error dict

OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
GREY = "#999999"
BASELINE_COLOURS = {
    MODEL: OKABE_ITO["black"], "ols": OKABE_ITO["blue"], "ridge": OKABE_ITO["vermillion"],
    "gd": OKABE_ITO["green"], "averaging": OKABE_ITO["orange"], "knn": OKABE_ITO["purple"],
    "lasso": OKABE_ITO["sky"], "dmmse": OKABE_ITO["yellow"], "zero": GREY,
}
BASELINE_ORDER = ("ols", "ridge", "gd", "averaging", "knn", "lasso", "dmmse")
LINESTYLES = ("--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))

ONE_COLUMN = 3.3  # inches
FULL_WIDTH = 6.9
BAND_ALPHA = 0.2
BAND_NOTE = "shaded: 95% interval"

STYLE = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: identical glyphs on every machine
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "figure.titlesize": 9,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "grid.linewidth": 0.5, "lines.linewidth": 1.2, "legend.frameon": False,
    "image.cmap": "viridis", "svg.hashsalt": "icl_regression", "pdf.fonttype": 42,
}


def styled(make_figure: Callable[..., Figure]) -> Callable[..., Figure]:
    """Build the figure under the project style (text properties are fixed at creation)."""

    @functools.wraps(make_figure)
    def wrapper(*args, **kwargs) -> Figure:
        with matplotlib.rc_context(STYLE):
            return make_figure(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free Figure (no global state, headless whatever the backend)."""
    return Figure(figsize=(width, height), layout="constrained")


# Metadata that would otherwise embed a version string or a timestamp.
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None},
             "svg": {"Date": None}}
FORMATS = tuple(_METADATA)


def save_figure(fig: Figure, stems: Path | Sequence[Path], formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 150) -> list[Path]:
    """Write `stem.<fmt>` for each stem and format, byte-identical for identical inputs.

    Each format is rendered once and the same bytes go to every stem (a second render of a
    constrained-layout figure may move things by a pixel).
    """
    stems = [stems] if isinstance(stems, Path) else list(stems)
    written = []
    for fmt in formats:
        buffer = io.BytesIO()
        with matplotlib.rc_context(STYLE):
            fig.savefig(buffer, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
        for stem in stems:
            path = stem.with_name(f"{stem.name}.{fmt}")
            write_atomically(path, buffer.getvalue())
            written.append(path)
    return written


# ---- predictor names ---------------------------------------------------------------------

_NAME = re.compile(r"^\s*([A-Za-z_][\w\-]*)\s*(?:\((.*)\))?\s*$")


def parse_predictor_name(name: str) -> tuple[str, dict[str, str]]:
    """`"ridge(lam=0.1)"` -> `("ridge", {"lam": "0.1"})`; `"ols"` -> `("ols", {})`."""
    match = _NAME.match(name)
    if match is None:
        return name, {}
    baseline, inner = match.groups()
    params = {}
    for part in (inner or "").split(","):
        key, sep, value = part.partition("=")
        if part.strip():
            params[key.strip() if sep else "value"] = value.strip() if sep else key.strip()
    return baseline, params


def as_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def predictor_label(name: str, bayes_lambda: float | None = None, model_label: str = "model"
                    ) -> str:
    """A legend entry naming the algorithm and its parameters."""
    baseline, params = parse_predictor_name(name)
    if baseline == MODEL:
        return model_label
    if baseline == "ols":
        return "OLS (min-norm)"
    if baseline == "ridge":
        lam = params.get("lam", params.get("value"))
        if lam == "bayes":
            return "ridge, Bayes λ*" + (f" = {bayes_lambda:.3g}" if bayes_lambda is not None
                                        else "")
        return f"ridge, λ = {lam}"
    if baseline == "gd":
        steps = params.get("steps", "1")
        eta = params.get("eta", "tuned")
        plural = "" if steps == "1" else "s"
        return f"GD, {steps} step{plural}, " + ("η tuned" if eta == "tuned" else f"η = {eta}")
    if baseline == "knn":
        return f"{params.get('k', params.get('value', '?'))}-NN (mean y)"
    if baseline == "lasso":
        return f"lasso, α = {params.get('alpha', params.get('value', '?'))}"
    if baseline == "dmmse":
        return "dMMSE (Bayes over task pool)"
    if baseline == "averaging":
        return "averaging (Σ y x / k)"
    if baseline == "zero":
        return "zero predictor"
    return name


def default_baselines(names: Sequence[str]) -> list[str]:
    """One predictor per baseline, in a fixed order: ridge prefers the Bayes λ, gd the fewest steps.

    Grids (several λ, several k for k-NN) belong in the sweep figures, not in every panel.
    """
    chosen = []
    for baseline in BASELINE_ORDER:
        members = [n for n in names if parse_predictor_name(n)[0] == baseline]
        if not members:
            continue
        if baseline == "ridge":
            bayes = [n for n in members if parse_predictor_name(n)[1].get("lam") == "bayes"]
            members = bayes or members
        if baseline == "gd":
            members = sorted(members, key=lambda n: as_float(
                parse_predictor_name(n)[1].get("steps")) or 1.0)
        chosen.append(members[0])
    return chosen


def predictor_colours(names: Sequence[str]) -> dict[str, tuple[str, object]]:
    """(colour, linestyle) per name: its baseline's colour; repeats change the linestyle."""
    seen: dict[str, int] = {}
    styles = {}
    for name in names:
        baseline = parse_predictor_name(name)[0]
        repeat = seen.get(baseline, 0)
        seen[baseline] = repeat + 1
        colour = BASELINE_COLOURS.get(baseline, GREY)
        styles[name] = (colour, "-" if baseline == MODEL else LINESTYLES[repeat % len(LINESTYLES)])
    return styles


def distinct_colours(names: Sequence[str]) -> list[str]:
    """One colour per name, all different: baseline colours first, then unused Okabe–Ito ones."""
    candidates = [*OKABE_ITO.values(), GREY]
    colours: list[str] = []
    for name in names:
        colour = BASELINE_COLOURS.get(parse_predictor_name(name)[0])
        if colour is None or colour in colours:
            colour = next((c for c in candidates if c not in colours), GREY)
        colours.append(colour)
    return colours


# ---- experiment figures: fixed styles for their baselines, ordered colours for models ----

# The experiment figures' predictors: name -> (colour, linestyle, legend label).
BASELINE_STYLES = {
    "ols": (BASELINE_COLOURS["ols"], "--", predictor_label("ols")),
    "averaging": (BASELINE_COLOURS["averaging"], "-.", predictor_label("averaging")),
    "ridge(lam=bayes)": (BASELINE_COLOURS["ridge"], ":", "ridge, Bayes λ*"),
    "dmmse": ("#B8A800", "-.", predictor_label("dmmse")),  # darker than Okabe–Ito yellow
    "huber": (OKABE_ITO["green"], "-.", "Huber (IRLS)"),
    "prior_mean": (GREY, ":", "prior mean x·μ (ignores context)"),
    "bayes_train_prior": (BASELINE_COLOURS["ridge"], "-.", "Bayes under training prior"),
}


def baseline_style(name: str) -> tuple[str, object, str]:
    """(colour, linestyle, legend label) of a baseline in the experiment figures."""
    if name.startswith("ridge(lam=") and name not in BASELINE_STYLES:
        return BASELINE_COLOURS["ridge"], ":", predictor_label(name)
    return BASELINE_STYLES.get(name, (GREY, "--", name))


def model_colours(count: int) -> list:
    """Black for one model; ordered viridis shades (no pale end) for several."""
    if count == 1:
        return [BASELINE_COLOURS["model"]]
    return [colormaps["viridis"](x) for x in np.linspace(0.0, 0.85, count)]
