"""Family-specific scores: accuracy for ±1 labels, per-component errors for mixtures."""

from __future__ import annotations

import numpy as np

from icl_regression import baselines
from icl_regression.data.families import Family
from icl_regression.evaluate import metrics
from icl_regression.storage import finite_or_none


def accuracy_curves(preds: dict, ys: np.ndarray, mask: np.ndarray, scored) -> dict:
    """name -> per-position accuracy of sign(pred) against ±1 labels; a prediction of exactly 0
    counts half (so the zero predictor scores chance, 0.5)."""
    out = {}
    for name, pred in preds.items():
        rows = len(pred)
        hit = (np.sign(np.asarray(pred, np.float64)) * ys[:rows] + 1) / 2  # (B, n) in {0, ½, 1}
        mean, _, _ = metrics.masked_mean(hit, mask[:rows])
        out[name] = finite_or_none(mean[scored])
    return out


def component_scores(family: Family, task, prompts, component: np.ndarray, preds: dict,
                     mask: np.ndarray, scored) -> dict:
    """label -> {"n_prompts", "normaliser", "oracle": (baseline, params), "error": {name:
    {mean, lo, hi}}} over the prompts of each component; "oracle" is the component's own best
    predictor (for a noise level: its Bayes ridge), run on that component's prompts only."""
    out = {}
    for c, (label, (base, params)) in enumerate(zip(family.components(task), family.oracle(task),
                                                    strict=True)):
        rows = np.flatnonzero(component == c)
        ys, sub_mask = np.asarray(prompts.ys)[rows], mask[rows]
        normaliser = float(np.mean(np.asarray(ys, np.float64)[sub_mask] ** 2))
        oracle = np.asarray(baselines.get_baseline(base, **params)(prompts.xs[rows], ys))
        errors = {}
        for name, pred in {**preds, "oracle": oracle}.items():
            keep = rows < len(pred) if name != "oracle" else slice(None)  # expensive: a subset
            values = pred if name == "oracle" else np.asarray(pred)[rows[keep]]
            curves = metrics.error_curve(values, ys[keep], normaliser, sub_mask[keep])
            errors[name] = {stat: finite_or_none(curve[scored]) for stat, curve in curves.items()}
        out[label] = {"n_prompts": int(len(rows)), "normaliser": normaliser,
                      "oracle": {"baseline": base, "params": json_params(params)},
                      "error": errors}
    return out


def json_params(params: dict) -> dict:
    """Parameters as JSON: scalars and tuples as they are, arrays by shape."""
    shown = {}
    for k, v in params.items():
        if isinstance(v, tuple):
            shown[k] = list(v)
            continue
        arr = np.asarray(v)
        shown[k] = v if arr.ndim == 0 and not hasattr(v, "shape") else (
            "see gd_eta" if k == "eta" else f"array{list(arr.shape)}")
    return shown
