"""What the training loss compares each prediction with (`loss_target`).

`labels`: the prompt's own y_i. `posterior_mean`: E[y_i | (x_j, y_j) for j < i, x_i], the Bayes
predictor's output, for linear tasks with a zero-mean Gaussian prior w ~ N(0, τ²/d · I) and
label noise σ: ridge with λ* = σ² d / τ² on the earlier pairs, and min-norm least squares when
σ = 0 (the posterior mean of w is then the projection of w onto the span of the earlier xs).

Why: for any predictor f of the prompt before y_i,
    E (f − y_i)² = E (f − E[y_i | prompt])² + E Var(y_i | prompt),
so both losses have the same minimiser, but the second term — the irreducible error, most of
the loss at k < d (a normalised (d − k)/d) — adds only noise to the gradients. Rao–Blackwell:
the target is y's conditional mean, the gradient's expectation is unchanged.
"""

from __future__ import annotations

import jax

from icl_regression.baselines.registry import predict_with_weights
from icl_regression.baselines.solvers import ols_weights, ridge_weights
from icl_regression.config import TaskConfig, TrainConfig
from icl_regression.data.sampling import bayes_ridge_lambda


def posterior_mean(xs: jax.Array, ys: jax.Array, task: TaskConfig) -> jax.Array:
    """E[y_i | pairs < i, x_i] for every position: (B, n, d), (B, n) -> (B, n). Zeroed
    (curriculum-inactive) coordinates carry no information and leave the formula unchanged."""
    lam = bayes_ridge_lambda(task)
    ws = ols_weights(xs, ys) if lam == 0 else ridge_weights(xs, ys, lam)  # (B, n, d)
    return predict_with_weights(ws, xs)


def loss_targets(cfg: TrainConfig, xs: jax.Array, ys: jax.Array) -> jax.Array:
    """The targets of the training loss: (B, n), constants to the gradient."""
    if cfg.loss_target == "labels":
        return ys
    return jax.lax.stop_gradient(posterior_mean(xs, ys, cfg.task))
