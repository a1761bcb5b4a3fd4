"""Bai, Chen, Wang, Xiong & Mei 2023, "Transformers as statisticians: provable in-context
learning with in-context algorithm selection" (NeurIPS): one transformer trained on a mixture of
noise levels is near the best ridge regression for each level (in-context algorithm selection,
Fig. 1/4)."""

from __future__ import annotations

from icl_regression.reproduce.claims import (
    Measurement,
    RunSpec,
    Step,
    at_most,
    register_claim,
    register_paper,
    register_run,
)

BAI = register_paper("bai2023", "Bai et al. 2023, Transformers as statisticians: provable "
                                "in-context learning with in-context algorithm selection")
register_run(RunSpec("noise_mixture", "noise_mixture_cpu", paper_preset="bai_noise_mixture"))
EVAL = Step("eval", "noise_mixture", {"n_prompts": 2000, "settings": ["train"],
                                      "implicit_settings": []})
NEAR = 0.05  # "near": within 0.05 of the per-level oracle's normalised error


@register_claim("bai.noise_mixture_selection", paper=BAI, where="Fig. 4", needs=(EVAL,),
                statement="one model trained on noise levels σ ∈ {0.1, 0.25, 0.5, 1} is near "
                          "the best ridge for each level",
                quantity="max over levels of error(model) − error(that level's best ridge), "
                         "last k",
                check=at_most(NEAR), paper_value="≈ the per-level ridge")
def noise_mixture_selection(records) -> Measurement:
    components = records(EVAL)["settings"]["train"]["components"]
    gaps = {label: c["error"]["model"]["mean"][-1] - c["error"]["oracle"]["mean"][-1]
            for label, c in components.items()}
    curves = {label: {"x": list(range(len(c["error"]["model"]["mean"]))),
                      "y": c["error"]["model"]["mean"]} for label, c in components.items()}
    return Measurement(max(gaps.values()), detail={"gap_by_level": gaps}, curves=curves)
