"""von Oswald, Niklasson, Randazzo, Sacramento, Mordvintsev, Zhmoginov & Vladymyrov 2022,
"Transformers learn in-context by gradient descent" (ICML 2023): a trained one-layer linear
self-attention model is one step of gradient descent with the optimal step size: the same loss,
and the same sensitivity of the prediction to the query (Fig. 2)."""

from __future__ import annotations

from icl_regression.reproduce.claims import (
    Measurement,
    RunSpec,
    Step,
    at_least,
    at_most,
    register_claim,
    register_paper,
    register_run,
)

OSWALD = register_paper("oswald2022", "von Oswald et al. 2022, Transformers learn in-context by "
                                      "gradient descent (ICML 2023)")
# Only the last checkpoint is measured here (the sensitivity-over-training curve is icl-lsa's).
register_run(RunSpec("lsa_one_layer", "oswald_lsa", ("keep_period=0", "ckpt_every=500"),
                     paper_preset="oswald_lsa"))
LSA = Step("lsa", "lsa_one_layer", {"n_eval": 4096})


@register_claim("oswald.loss_equals_gd", paper=OSWALD, where="Fig. 2 (left)", needs=(LSA,),
                statement="a trained one-layer LSA reaches the loss of one optimal GD step",
                quantity="|trained LSA loss / one-step GD loss − 1|", check=at_most(0.01),
                paper_value="equal (curves overlap)")
def loss_equals_gd(records) -> Measurement:
    lsa = records(LSA)
    ratio = lsa["trained_loss"] / lsa["gd_loss"]
    return Measurement(abs(ratio - 1), detail={"trained_loss": lsa["trained_loss"],
                                               "gd_loss": lsa["gd_loss"], "eta": lsa["eta"]})


@register_claim("oswald.sensitivity_cosine", paper=OSWALD, where="Fig. 2 (right)", needs=(LSA,),
                statement="its sensitivity ∂ŷ/∂x_query aligns with one GD step's",
                quantity="mean cosine of the two sensitivities over prompts",
                check=at_least(0.99), paper_value="cosine ≈ 1")
def sensitivity_cosine(records) -> Measurement:
    lsa = records(LSA)
    return Measurement(lsa["cosine"], detail={"l2_rel": lsa.get("l2_rel"),
                                              "pred_diff": lsa.get("pred_diff")})
