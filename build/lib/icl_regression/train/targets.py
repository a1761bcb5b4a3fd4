"""What the training loss compares each prediction with (`loss_target`).

`labels`: the prompt's own y_i. `posterior_mean`: E[y_i | (x_j, y_j) for j < i, x_i], the Bayes
predictor's output, for linear tasks with a zero-mean Gaussian prior w ~ N(0, τ²/d · I) and
label noise σ: ridge with λ* = σ² d / τ² on the earlier pairs, and min-norm least squares when
σ = 0 (the posterior mean of w is then the projection of w onto the span of the earlier xs).
`auto`: the posterior mean where the task admits it (`config.effective_loss_target`), else y —
so a preset that sets it still runs with any family or prior swapped in.

Why: for any predictor f of the prompt before y_i,
    E (f − y_i)² = E (f − E[y_i | prompt])² + E Var(y_i | prompt),
so both losses have the same minimiser, but the second term — the irreducible error, most of
the loss at k < d (a normalised (d − k)/d) — adds only noise to the gradients. Rao–Blackwell:
the target is y's conditional mean, the gradient's expectation is unchanged.
"""

from __future__ import annotations

import jax

from icl_regression import baselines
from icl_regression.config import TaskConfig, TrainConfig, effective_loss_target
from icl_regression.data.families import family_of


def posterior_mean(xs: jax.Array, ys: jax.Array, task: TaskConfig) -> jax.Array:
    """E[y_i | pairs < i, x_i] for every position: (B, n, d), (B, n) -> (B, n). It is the
    family's oracle (ols or ridge λ*), which under the priors `validate_loss_target` admits is
    exactly the posterior mean. Zeroed (curriculum-inactive) coordinates carry no information
    and leave the formula unchanged."""
    (name, params), = family_of(task).oracle(task)
    return baselines.get_baseline(name, **params)(xs, ys)


def loss_targets(cfg: TrainConfig, xs: jax.Array, ys: jax.Array) -> jax.Array:
    """The targets of the training loss: (B, n), constants to the gradient."""
    if effective_loss_target(cfg) == "labels":
        return ys
    return jax.lax.stop_gradient(posterior_mean(xs, ys, cfg.task))
