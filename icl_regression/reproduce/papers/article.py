"""The article-level experiments (icl-experiments), each a claim in the direction the
literature reports: bigger models learn in context better (scale); deeper models override a
shifted pretraining prior more (after Wei et al. 2023's flipped labels); training on corrupted
demonstrations buys robustness to them (after Min et al. 2022); predictions depend on the order
of the demonstrations (Lu et al. 2022); nearest-neighbour demonstrations help (Liu et al. 2022);
learned absolute positions extrapolate worse past the training length than none (Garg et al.
2022 §5, Lee et al. 2024)."""

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
from icl_regression.reproduce.records import difference

ARTICLE = register_paper("article", "The article-level experiments of this project "
                                    "(docs/experiments.md)")
N_PROMPTS = 1000
# At paper scale the presets' own checkpoint schedules stand (order_sensitivity keeps its own).
for name, preset, overrides, paper in (
        ("scale_1x16", "scale_cpu", ("model.n_layer=1", "model.d_model=16"), "scale"),
        ("scale_4x64", "scale_cpu", ("model.n_layer=4", "model.d_model=64"), "scale"),
        ("prior_1_layer", "prior_override_cpu", ("model.n_layer=1",), "prior_override"),
        ("prior_4_layers", "prior_override_cpu", ("model.n_layer=4",), "prior_override"),
        ("corrupted_20", "corrupted_demos_cpu", ("task.corrupt_fraction=0.2",),
         "corrupted_demos"),
        ("quickstart_labels", "order_sensitivity_cpu", ("keep_period=2500",),
         "order_sensitivity"),
        ("long_learned", "long_context_cpu", ("model.positions=learned",), "long_context"),
        ("long_none", "long_context_cpu", ("model.positions=none",), "long_context")):
    register_run(RunSpec(name, preset, overrides, paper_preset=paper,
                         paper_overrides=() if name == "quickstart_labels" else None))


def experiment(name: str, run: str, **options) -> Step:
    return Step("experiment", run, {"name": name, "n_prompts": N_PROMPTS, **options})


def _band(record: dict, name: str, i: int, where=lambda r: r["error"]) -> Measurement:
    band = where(record["results"])[name]
    return Measurement(band["mean"][i], band["lo"][i], band["hi"][i])


SCALE = (experiment("scale", "scale_1x16"), experiment("scale", "scale_4x64"))


@register_claim("article.scale", paper=ARTICLE, where="experiments: scale", needs=SCALE,
                statement="a 4-layer width-64 model beats a 1-layer width-16 one at k = 2d",
                quantity="error(1 × 16) − error(4 × 64) at k = 2d", check=at_least(0.0),
                paper_value="larger is better")
def scale(records) -> Measurement:
    small, big = records(SCALE[0]), records(SCALE[1])
    k = 2 * small["results"]["d"]
    return difference(_band(small, "model", k), _band(big, "model", k))


PRIOR = (experiment("prior_override", "prior_1_layer"),
         experiment("prior_override", "prior_4_layers"))


@register_claim("article.prior_override", paper=ARTICLE, where="experiments: prior override",
                needs=PRIOR, check=at_least(0.0), paper_value="larger overrides more",
                statement="on tasks of the flipped prior mean, a deeper model follows the "
                          "context more (lower error at the last k)",
                quantity="error(1 layer) − error(4 layers), flipped tasks, last k")
def prior_override(records) -> Measurement:
    flipped = lambda r: r["settings"]["flipped"]["error"]  # noqa: E731
    one, four = records(PRIOR[0]), records(PRIOR[1])
    return difference(_band(one, "model", -1, flipped), _band(four, "model", -1, flipped))


CORRUPTED = (experiment("corrupted_demos", "scale_4x64"),
             experiment("corrupted_demos", "corrupted_20"))


@register_claim("article.corrupted_demos", paper=ARTICLE, where="experiments: corrupted demos",
                needs=CORRUPTED, check=at_least(0.0), paper_value="robustness is learnable",
                statement="with half the context's labels corrupted, a model trained with 20% "
                          "corrupted labels errs less than a clean-trained one",
                quantity="error(clean-trained) − error(trained 20% corrupted), 5 of 10 "
                         "corrupted")
def corrupted_demos(records) -> Measurement:
    noise = lambda r: r["modes"]["noise"]["error"]  # noqa: E731
    clean, robust = records(CORRUPTED[0]), records(CORRUPTED[1])
    return difference(_band(clean, "model", -1, noise), _band(robust, "model", -1, noise))


ORDER = experiment("order_sensitivity", "quickstart_labels")


@register_claim("article.order_sensitivity", paper=ARTICLE, where="experiments: order",
                needs=(ORDER,), check=at_least(1e-3), paper_value="order matters",
                statement="the prediction changes with the order of the same demonstrations",
                quantity="variance over 8 orders ÷ E y², mean over k, final checkpoint")
def order_sensitivity(records) -> Measurement:
    results = records(ORDER)["results"]
    final = results["variance"]["model"][str(max(results["steps"]))]
    return Measurement(float(np.mean(final)), detail={
        "ols": float(np.mean(results["variance"]["ols"]))},
        curves={"model": {"x": results["k"], "y": final}})


SELECTION = experiment("demo_selection", "quickstart_labels")


@register_claim("article.demo_selection", paper=ARTICLE, where="experiments: selection",
                needs=(SELECTION,), check=at_least(0.0), paper_value="nearest helps",
                statement="the k demonstrations nearest the query beat k random ones (k = 2)",
                quantity="error(k random) − error(k nearest), k = 2")
def demo_selection(records) -> Measurement:
    record = records(SELECTION)
    i = record["results"]["k"].index(2)
    by = lambda how: lambda r: r["error"][how]  # noqa: E731
    return difference(_band(record, "model", i, by("random")),
                      _band(record, "model", i, by("nearest")))


LONG = (experiment("long_context", "long_learned"), experiment("long_context", "long_none"))


@register_claim("article.long_context", paper=ARTICLE, where="experiments: long contexts",
                needs=LONG, check=at_least(0.0), paper_value="learned positions degrade",
                statement="past the training length (3×), learned absolute positions err more "
                          "than no positional embedding",
                quantity="error(learned) − error(none) at the last k")
def long_context(records) -> Measurement:
    learned, none = records(LONG[0]), records(LONG[1])
    return difference(_band(learned, "model", -1), _band(none, "model", -1))
