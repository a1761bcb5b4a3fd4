"""Garg, Tsipras, Liang & Valiant 2022, "What can transformers learn in-context? A case study of
simple function classes" (NeurIPS): a transformer trained on prompts of a function class matches
the class's best estimator: least squares on linear functions (d = 20), lasso on sparse linear
ones, greedy trees / XGBoost on decision trees, a network trained by gradient descent on
two-layer ReLU networks."""

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
from icl_regression.reproduce.records import (
    curves_of,
    difference,
    error_at,
    predictor,
    predictors,
)

GARG = register_paper("garg2022", "Garg et al. 2022, What can transformers learn in-context? "
                                  "A case study of simple function classes (NeurIPS)")
EVAL = {"n_prompts": 1000, "settings": ["train"], "implicit_settings": [],
        "expensive_prompts": 500}
# How close "matches" is: the model within 0.05 of the baseline's normalised error (1 = the
# zero predictor), a tenth of the gap between OLS and the zero predictor at k = d/2 for d = 20.
MATCH = 0.05

for name, preset, paper in (("garg_linear", "garg_linear_cpu", "garg_linear"),
                            ("garg_sparse_linear", "sparse_linear_cpu", "garg_sparse_linear"),
                            ("garg_decision_tree", "decision_tree_cpu", "garg_decision_tree"),
                            ("garg_relu2nn", "relu2nn_cpu", "garg_relu2nn")):
    register_run(RunSpec(name, preset, paper_preset=paper))

LINEAR, SPARSE = Step("eval", "garg_linear", EVAL), Step("eval", "garg_sparse_linear", EVAL)
TREE, RELU = Step("eval", "garg_decision_tree", EVAL), Step("eval", "garg_relu2nn", EVAL)


def _train(records, step) -> dict:
    return records(step)["settings"]["train"]


@register_claim("garg.linear_below_d", paper=GARG, where="Fig. 2 (left)", needs=(LINEAR,),
                statement="below k = d the transformer's error tracks least squares (d = 20)",
                quantity="mean |error(model) − error(OLS)| over k = 1 … d−1",
                check=at_most(MATCH), paper_value="≈ 0 (curves overlap)")
def linear_below_d(records) -> Measurement:
    setting = _train(records, LINEAR)
    d = records(LINEAR)["task"]["d"]
    ols = predictor(setting["error"], "ols")
    gaps = [abs(error_at(setting, "model", k).value - error_at(setting, ols, k).value)
            for k in range(1, d)]
    return Measurement(sum(gaps) / len(gaps), curves=curves_of(setting, ["model", ols]),
                       detail={"max_gap": max(gaps)})


@register_claim("garg.linear_2d", paper=GARG, where="Fig. 2 (left)", needs=(LINEAR,),
                statement="at k = 2d in-context examples the error is about zero (d = 20)",
                quantity="normalised error of the model at k = 2d", check=at_most(0.01),
                paper_value="≈ 0")
def linear_2d(records) -> Measurement:
    setting = _train(records, LINEAR)
    d = records(LINEAR)["task"]["d"]
    k = min(2 * d, max(setting["k"]))
    at = error_at(setting, "model", k)
    return Measurement(at.value, at.lo, at.hi, curves=curves_of(setting, ["model"]),
                       detail={"k": k})


def _matches(step: Step, baselines: tuple[str, ...], records, k_of=lambda d, n: n - 1):
    """error(model) − min over the family's baselines at k: ≤ MATCH means matches or beats."""
    setting = _train(records, step)
    task = records(step)["task"]
    k = k_of(task["d"], task["n_points"])
    names = [n for b in baselines for n in predictors(setting["error"], b)]
    best = min(names, key=lambda n: error_at(setting, n, k).value)
    gap = difference(error_at(setting, "model", k), error_at(setting, best, k))
    return Measurement(gap.value, gap.lo, gap.hi, curves=curves_of(setting, ["model", *names]),
                       detail={"k": k, "best_baseline": best,
                               "model": error_at(setting, "model", k).value,
                               "baseline": error_at(setting, best, k).value})


@register_claim("garg.sparse_vs_lasso", paper=GARG, where="Fig. 4 (sparse linear)",
                needs=(SPARSE,), check=at_most(MATCH), paper_value="model ≈ lasso",
                statement="on sparse linear functions the transformer matches lasso at k = d",
                quantity="error(model) − error(lasso) at k = d")
def sparse_vs_lasso(records) -> Measurement:
    return _matches(SPARSE, ("lasso",), records, k_of=lambda d, n: d)


@register_claim("garg.tree_vs_trees", paper=GARG, where="Fig. 4 (decision trees)",
                needs=(TREE,), check=at_most(MATCH), paper_value="model below both",
                statement="on depth-3 decision trees the transformer matches or beats greedy "
                          "trees and XGBoost",
                quantity="error(model) − best of greedy tree / XGBoost, last k")
def tree_vs_trees(records) -> Measurement:
    return _matches(TREE, ("tree", "xgboost"), records)


@register_claim("garg.relu2nn_vs_gd_network", paper=GARG, where="Fig. 4 (2-layer ReLU NNs)",
                needs=(RELU,), check=at_most(MATCH), paper_value="model ≈ / below it",
                statement="on two-layer ReLU networks the transformer matches or beats a "
                          "network of the same shape trained by gradient descent",
                quantity="error(model) − error(nn_gd), last k")
def relu2nn_vs_gd_network(records) -> Measurement:
    return _matches(RELU, ("nn_gd",), records)
