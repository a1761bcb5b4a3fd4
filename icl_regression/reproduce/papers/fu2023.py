"""Fu, Chen, Jia & Sharan 2023, "Transformers learn higher-order optimization methods for
in-context learning: a study with linear models" (NeurIPS 2024): read out layer by layer, a
transformer matches iterative Newton with about 3 more iterations per middle layer, while the
number of gradient-descent steps that matches grows exponentially with depth; the same holds on
ill-conditioned data (κ = 100)."""

from __future__ import annotations

from icl_regression.reproduce.claims import (
    Measurement,
    Step,
    at_least,
    register_claim,
    register_paper,
)
from icl_regression.reproduce.papers.akyurek2022 import PROBES

FU = register_paper("fu2023", "Fu et al. 2023, Transformers learn higher-order optimization "
                              "methods for in-context learning: a study with linear models")
# The probe-study model (6 layers, interleaved tokens, akyurek2022) is the deep model here.
LAYERWISE = Step("layerwise", PROBES.run, {"n_prompts": 3000, "settings": ["train", "kappa_100"],
                                           "algorithms": ["newton", "gd"]})


def _slope(records, setting: str, algorithm: str) -> Measurement:
    match = records(LAYERWISE)["settings"][setting]["match"][algorithm]
    layers = list(range(len(match["best_iteration_by_layer"])))
    return Measurement(match["slope"]["per_layer"],
                       curves={f"best {algorithm} iteration": {
                           "x": layers, "y": match["best_iteration_by_layer"]}},
                       detail={"intercept": match["slope"]["intercept"],
                               "of": match["slope"]["of"]})


@register_claim("fu.newton_linear", paper=FU, where="Fig. 3", needs=(LAYERWISE,),
                statement="the best-matching Newton iteration grows linearly with depth",
                quantity="fitted Newton iterations per layer (layers ≥ 1)", check=at_least(1.0),
                paper_value="≈ 3 per middle layer")
def newton_linear(records) -> Measurement:
    return _slope(records, "train", "newton")


@register_claim("fu.gd_geometric", paper=FU, where="Fig. 3", needs=(LAYERWISE,),
                statement="the best-matching number of GD steps grows geometrically with depth",
                quantity="fitted doublings of GD steps per layer (log₂ t, layers ≥ 1)",
                check=at_least(0.5), paper_value="exponential growth")
def gd_geometric(records) -> Measurement:
    return _slope(records, "train", "gd")


@register_claim("fu.newton_linear_kappa_100", paper=FU, where="§5 (ill-conditioned)",
                needs=(LAYERWISE,), check=at_least(1.0), paper_value="Newton still matches",
                statement="at condition number κ = 100 the Newton match still grows linearly",
                quantity="fitted Newton iterations per layer on κ = 100 prompts")
def newton_linear_kappa_100(records) -> Measurement:
    return _slope(records, "kappa_100", "newton")
