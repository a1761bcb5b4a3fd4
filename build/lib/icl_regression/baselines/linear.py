"""The linear baselines (a weight vector per prefix): zero, averaging, ols, ridge, gd, lasso;
and the tuning of GD's step size on held-out prompts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from icl_regression.baselines.registry import (
    PredictorSet,
    predict_with_weights,
    register_baseline,
)
from icl_regression.baselines.solvers import (
    einsum,
    exclusive_cumsum,
    gd_weights,
    lasso_weights,
    ols_weights,
    ridge_weights,
)
from icl_regression.config.checks import require
from icl_regression.data.sampling import bayes_ridge_lambda


@register_baseline("zero", linear=True)
@jax.jit
def zero_weights(xs: jax.Array, ys: jax.Array) -> jax.Array:
    return jnp.zeros_like(xs)


@register_baseline("averaging", linear=True)
@jax.jit
def averaging_weights(xs: jax.Array, ys: jax.Array) -> jax.Array:
    """b_i / i (0 for the empty prefix): (B, n, d)."""
    b = exclusive_cumsum(xs * ys[..., None])  # (B, n, d)
    count = jnp.arange(xs.shape[1], dtype=xs.dtype)[None, :, None]  # (1, n, 1)
    return b / jnp.maximum(count, 1.0)


@dataclass(frozen=True)
class RidgeGridKnobs:
    lams: tuple[float, ...] = (0.1, 1.0)  # fixed λ values (`icl-eval ridge_grid.lams=[0.5]`)


@dataclass(frozen=True)
class LassoKnobs:
    alpha: float = 0.1  # the L1 weight α (lasso runs for sparse w priors only)


def _check_grid(knobs: RidgeGridKnobs) -> None:
    require(all(0 < lam < math.inf for lam in knobs.lams), "ridge_grid.lams", knobs.lams,
            "each must be a finite number > 0")


def _check_lasso(knobs: LassoKnobs) -> None:
    require(0 < knobs.alpha < math.inf, "lasso.alpha", knobs.alpha, "must be > 0")


def _ridge_bayes(ctx) -> dict:
    """ridge(λ*), λ* = σ² d / τ²: the Gaussian prior's posterior mean (when 0 < λ* < ∞)."""
    lam = bayes_ridge_lambda(ctx.task)
    return {"ridge(lam=bayes)": {"lam": lam}} if 0 < lam < math.inf else {}


def _ridge_per_noise(ctx) -> dict:
    """Each σ's own Bayes λ* = σ² d / τ²: the single-λ algorithms a noise mixture selects from."""
    task = ctx.task
    return {f"ridge(sigma={s:g})": {"lam": s**2 * task.d / task.w_scale**2}
            for s in task.noise_stds}


def _lasso(ctx) -> dict:
    if ctx.task.w_prior != "sparse":
        return {}
    return {f"lasso(alpha={ctx.knobs.alpha:g})": {"alpha": ctx.knobs.alpha}}


register_baseline("ols", linear=True)(ols_weights)
# The λ -> 0 limit of ridge is the min-norm ols (the Givens solver of ridge needs λ > 0).
register_baseline("ridge", linear=True, required=("lam",),
                  specialise=lambda p: ols_weights if float(p["lam"]) == 0.0 else None, sets={
                      "ridge_bayes": PredictorSet("ridge", _ridge_bayes),
                      "ridge_grid": PredictorSet("ridge", lambda ctx: {
                          f"ridge(lam={lam:g})": {"lam": lam} for lam in ctx.knobs.lams},
                          knobs=RidgeGridKnobs, check=_check_grid),
                      "ridge_per_noise": PredictorSet("ridge", _ridge_per_noise)})(ridge_weights)
register_baseline("gd", linear=True, required=("eta",), predictors=lambda ctx: {
    f"gd(steps={ctx.gd_steps})": {"eta": np.asarray(ctx.gd_eta, np.float32),
                                  "steps": ctx.gd_steps}})(gd_weights)
register_baseline("lasso", linear=True, required=("alpha",), predictors=_lasso, knobs=LassoKnobs,
                  check=_check_lasso)(lasso_weights)


@partial(jax.jit, static_argnames="steps")
def _gd_position_errors(xs, ys, eta, steps):
    preds = predict_with_weights(gd_weights(xs, ys, eta, steps), xs)
    return jnp.nan_to_num(jnp.mean((preds - ys) ** 2, axis=0), nan=jnp.inf)  # (n,)


@jax.jit
def _one_step_eta(xs, ys):
    u = einsum("bnd,bnd->bn", exclusive_cumsum(xs * ys[..., None]), xs)  # (B, n): x_i · b_i
    num, den = jnp.sum(ys * u, axis=0), jnp.sum(u * u, axis=0)
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)  # (n,)


def tune_gd_eta(xs: jax.Array, ys: jax.Array, steps: int = 1,
                grid: np.ndarray | None = None) -> np.ndarray:
    """Per-position step size minimising the mean squared error on held-out prompts: (n,).

    One step: the prediction η·(x_i · b_i) is linear in η, so the minimiser is closed form,
    η_i = Σ y_i u_i / Σ u_i² with u_i = x_i · b_i (exact for the given prompts). More steps: a
    log-spaced grid (default 10⁻³…10⁰, 61 values), the best value per position. Position 0
    has no context; its η is reported as 0.
    """
    if steps == 1:
        return np.asarray(_one_step_eta(xs, ys))
    grid = np.logspace(-3, 0, 61) if grid is None else np.asarray(grid)
    errors = np.stack([np.asarray(_gd_position_errors(xs, ys, float(e), steps)) for e in grid])
    eta = grid[np.argmin(errors, axis=0)]  # (n,)
    eta[0] = 0.0
    return eta
