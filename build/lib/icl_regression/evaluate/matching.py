"""Layer ↔ iteration matching: SPD between each layer's read-out and each iterative algorithm
after t iterations (Fu et al. 2023), the best-matching t, and the slope of t against layer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from icl_regression.baselines import iterative
from icl_regression.storage import finite_or_none

# GD needs exponentially more steps than Newton for the same accuracy: a geometric grid.
GD_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024,
            1536, 2048, 3072, 4096)
# Step counts fitted on a log scale (GD-like: accuracy grows with log t, Newton's with t).
LOG_FITTED = ("gd", "online_gd")


def default_iterations(name: str, d: int) -> tuple[int, ...]:
    """The iteration counts matched for algorithm `name` at dimension d."""
    return {"newton": tuple(range(21)), "gd": GD_STEPS, "cg": tuple(range(2 * d + 1)),
            "online_gd": (1, 2, 3, 4, 6, 8, 12, 16)}[name]


def sq_error_curve(preds: np.ndarray, ys: np.ndarray, normaliser: float) -> np.ndarray:
    """Mean over prompts of (pred − y)² / normaliser: (..., B, n) -> (..., n)."""
    diff = np.asarray(preds, np.float64) - np.asarray(ys, np.float64)
    return np.mean(diff**2, axis=-2) / normaliser


def spd_grid(readout: np.ndarray, algorithm: np.ndarray, normaliser: float) -> np.ndarray:
    """SPD[l, t, k] = E_b (readout[l, b, k] − algorithm[t, b, k])² / normaliser:
    (L, B, n), (T, B, n) -> (L, T, n)."""
    readout, algorithm = np.asarray(readout, np.float64), np.asarray(algorithm, np.float64)
    spd = np.stack([sq_error_curve(algorithm, layer, normaliser) for layer in readout])
    return np.where(np.isfinite(spd), spd, np.inf)  # a diverged iterate never matches


def best_iterations(spd: np.ndarray, iterations: Sequence[int], ks: slice = slice(1, None)):
    """Best-matching t per (layer, k) (L, n), and per layer on the SPD averaged over `ks`
    (default every k ≥ 1: k = 0 has no context, every algorithm predicts 0 there)."""
    its = np.asarray(iterations)
    per_k = its[np.argmin(spd, axis=1)]  # (L, n)
    by_layer = its[np.argmin(spd[..., ks].mean(-1), axis=1)]  # (L,)
    return per_k, by_layer


def fitted_slope(layers: Sequence[int], best: Sequence[float], log2: bool = False):
    """Least-squares slope and intercept of best t (or log₂ t) against layer, layers ≥ 1."""
    layers, best = np.asarray(layers, float), np.asarray(best, float)
    keep = layers >= 1
    values = np.log2(np.maximum(best[keep], 1.0)) if log2 else best[keep]
    if keep.sum() < 2:
        return None, None
    slope, intercept = np.polyfit(layers[keep], values, 1)
    return float(slope), float(intercept)


def match_algorithms(readout: np.ndarray, xs, ys, tuning: tuple, algorithms: Sequence[str],
                     normaliser: float) -> dict:
    """Per algorithm: iterations, tuned η (gd / online_gd: per (t, k), on the `tuning`
    prompts), its error per (t, k), SPD to each layer's read-out per (layer, t, k), the best t."""
    d = xs.shape[-1]
    out = {}
    for name in algorithms:
        its = default_iterations(name, d)
        normalised = name == "gd"  # step η / ‖S‖₂: no divergence after 4,096 steps
        eta = (iterative.tune_iteration_eta(name, *tuning, its, normalised=normalised)
               if name in iterative.TUNED else None)
        preds = np.asarray(iterative.iterate_predictions(name, xs, ys, its, eta, normalised))
        spd = spd_grid(readout, preds, normaliser)  # (L, T, n)
        per_k, by_layer = best_iterations(spd, its)
        log2 = name in LOG_FITTED
        slope, intercept = fitted_slope(np.arange(readout.shape[0]), by_layer, log2)
        out[name] = {"iterations": list(its),
                     "eta": None if eta is None else finite_or_none(eta),
                     "eta_per": "1/‖S‖₂" if normalised else "1",
                     "error": finite_or_none(sq_error_curve(preds, ys, normaliser)),
                     "spd": finite_or_none(spd), "best_iteration": per_k.tolist(),
                     "best_iteration_by_layer": by_layer.tolist(),
                     "slope": {"per_layer": slope, "intercept": intercept,
                               "of": "log2(t)" if log2 else "t"}}
    return out
