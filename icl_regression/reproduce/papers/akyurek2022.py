"""Akyürek, Schuurmans, Andreas, Ma & Zhou 2022, "What learning algorithm is in-context
learning? Investigations with linear models" (ICLR 2023): the algorithm a trained transformer
matches moves with depth (one layer: one gradient step; intermediate depth: ridge; deep: least
squares, Fig. 3), and its hidden states hold the moment Xᵀy and the weights w_OLS, decodable by
probes far above a control model trained on one fixed w (§5)."""

from __future__ import annotations

import numpy as np

from icl_regression.reproduce.claims import (
    Measurement,
    RunSpec,
    Step,
    at_least,
    register_claim,
    register_paper,
    register_run,
)
from icl_regression.reproduce.records import predictors

AKYUREK = register_paper("akyurek2022", "Akyürek et al. 2022, What learning algorithm is "
                                        "in-context learning? Investigations with linear models")
EVAL = {"n_prompts": 1000, "settings": ["train"], "implicit_settings": []}
DEPTHS = {"shallow": 1, "intermediate": 2, "deep": 8}
for depth in DEPTHS.values():
    register_run(RunSpec(f"depth_{depth}", "depth_sweep_cpu", (f"model.n_layer={depth}",),
                         paper_preset="depth_sweep"))
register_run(RunSpec("probe_study", "probe_study_cpu", paper_preset="probe_study"))
register_run(RunSpec("probe_study_fixed_w", "probe_study_cpu",
                     ("task.w_prior=fixed", "steps=2500"), paper_preset="probe_study"))
PROBES = Step("probes", "probe_study", {"probes": ["attention"], "targets": ["xty", "w_ols"],
                                        "positions": "y", "n_prompts": 2048,
                                        "attention": {"max_steps": 400}},
              control="probe_study_fixed_w")
ALGORITHMS = ("gd", "ridge", "ols")


def _nearest_margin(records, step: Step, target: str) -> Measurement:
    """min SPD to the other algorithms − SPD to `target`, averaged over k = 1 … n−1 (SPD:
    mean squared prediction difference ÷ E y²): > 0 means the model is nearest `target`."""
    setting = records(step)["settings"]["train"]
    ks = [k for k in setting["k"] if k >= 1]
    index = [setting["k"].index(k) for k in ks]
    spd = {}
    for algorithm in ALGORITHMS:
        curves = [np.array([setting["spd"][n][i] for i in index], float)
                  for n in predictors(setting["spd"], algorithm)]
        spd[algorithm] = min(float(np.nanmean(c)) for c in curves)
    others = min(v for a, v in spd.items() if a != target)
    return Measurement(others - spd[target], detail={"spd": spd},
                       curves={f"SPD to {a}": {"x": ks, "y": [min(
                           setting["spd"][n][i] for n in predictors(setting["spd"], a))
                           for i in index]} for a in ALGORITHMS})


def _depth_claim(name: str, depth: int, target: str, what: str) -> None:
    step = Step("eval", f"depth_{depth}", EVAL)

    @register_claim(f"akyurek.{name}", paper=AKYUREK, where="Fig. 3", needs=(step,),
                    statement=f"a {depth}-layer transformer's predictions are nearest {what}",
                    quantity=f"min SPD to the other algorithms − SPD to {target} (k ≥ 1)",
                    check=at_least(0.0), paper_value=f"nearest {target}")
    def measure(records) -> Measurement:
        return _nearest_margin(records, step, target)


_depth_claim("shallow_gd", DEPTHS["shallow"], "gd", "one step of gradient descent")
_depth_claim("intermediate_ridge", DEPTHS["intermediate"], "ridge", "ridge regression")
_depth_claim("deep_ols", DEPTHS["deep"], "ols", "least squares")


def _probe_margin(records, target: str) -> Measurement:
    from icl_regression.probes.study import study_summary

    result = records(PROBES)
    row = study_summary(result)[target]["attention"]
    layers = result["layers"]
    r2 = result["targets"][target]["attention"]
    columns = [i for i, k in enumerate(result["k"]) if k >= result["d"]]
    mean_r2 = [float(np.nanmean([np.nan if r[c] is None else r[c] for c in columns]))
               for r in r2["r2"]]
    return Measurement(row["trained"] - row["fixed_w"], detail=row,
                       curves={"trained": {"x": layers, "y": mean_r2}})


@register_claim("akyurek.probe_xty", paper=AKYUREK, where="§5, Fig. 6", needs=(PROBES,),
                statement="Xᵀy is decodable from the hidden states far above a fixed-w control",
                quantity="held-out R² (attention probe, best layer, k ≥ d) − fixed-w R²",
                check=at_least(0.3), paper_value="R² ≈ 0.9+ vs control ≈ 0")
def probe_xty(records) -> Measurement:
    return _probe_margin(records, "xty")


@register_claim("akyurek.probe_w_ols", paper=AKYUREK, where="§5, Fig. 6", needs=(PROBES,),
                statement="w_OLS is decodable from the hidden states far above a fixed-w "
                          "control", check=at_least(0.3), paper_value="R² ≈ 0.9+ late layers",
                quantity="held-out R² (attention probe, best layer, k ≥ d) − fixed-w R²")
def probe_w_ols(records) -> Measurement:
    return _probe_margin(records, "w_ols")

