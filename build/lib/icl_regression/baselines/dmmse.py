"""dmmse: the Bayes posterior mean over a finite task pool (Raventós et al. 2023)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from icl_regression.baselines.registry import register_baseline
from icl_regression.baselines.solvers import einsum, exclusive_cumsum

# dmmse needs the label-noise σ of its likelihood. For a noise-free task the posterior is a
# point mass on the pool members that fit the prefix exactly, and any small σ gives the same
# answer as soon as one member fits; 0.1 keeps the softmax smooth in float32 before that.
DEFAULT_DMMSE_NOISE_STD = 0.1


@dataclass(frozen=True)
class DmmseKnobs:
    noise_std: float = 0.0  # the likelihood's σ; 0: the task's σ, else a default


def _check_dmmse(knobs: DmmseKnobs) -> None:
    from icl_regression.config.checks import require

    require(knobs.noise_std >= 0, "dmmse.noise_std", knobs.noise_std, "must be >= 0")


def _dmmse_predictors(ctx) -> dict:
    """The task pool's posterior mean; only for tasks drawn from a pool (pool_size > 0)."""
    from icl_regression.data import tasks

    task = ctx.task
    if task.pool_size <= 0:
        return {}
    sigma = ctx.knobs.noise_std or task.noise_std or DEFAULT_DMMSE_NOISE_STD
    return {"dmmse": {"pool": tasks.task_pool(ctx.seed, task), "noise_std": sigma}}


@register_baseline("dmmse", required=("pool",), predictors=_dmmse_predictors, knobs=DmmseKnobs,
                   check=_check_dmmse)
@partial(jax.jit, static_argnames="chunk")
def dmmse_predict(xs: jax.Array, ys: jax.Array, pool: jax.Array,
                  noise_std: float = DEFAULT_DMMSE_NOISE_STD, chunk: int = 64) -> jax.Array:
    """Posterior mean of w·x_i under a uniform prior over the pool (M, d) and Gaussian noise σ.

    log p(m | prefix i) = −Σ_{j<i} (y_j − w_m·x_j)² / (2σ²) + const; the softmax over the pool
    is accumulated chunk by chunk (running max), so memory is B·n·chunk, not B·n·M.
    """
    pool = jnp.asarray(pool, xs.dtype)
    n_pool = pool.shape[0]
    pad = -n_pool % chunk
    chunks = jnp.pad(pool, ((0, pad), (0, 0))).reshape(-1, chunk, pool.shape[1])  # (C, c, d)
    real = (jnp.arange(n_pool + pad) < n_pool).reshape(-1, chunk)  # (C, c)
    inv_two_var = 0.5 / jnp.asarray(noise_std, xs.dtype) ** 2

    def accumulate(carry, chunk_in):
        top, norm, weighted = carry  # (B, n) each
        members, is_real = chunk_in
        proj = einsum("bnd,md->bnm", xs, members)  # (B, n, c): w_m · x_j
        sq = (ys[..., None] - proj) ** 2
        log_lik = -exclusive_cumsum(sq) * inv_two_var  # (B, n, c): pairs j < i
        log_lik = jnp.where(is_real, log_lik, -jnp.inf)
        new_top = jnp.maximum(top, jnp.max(log_lik, axis=-1))
        rescale = jnp.exp(top - new_top)
        probs = jnp.exp(log_lik - new_top[..., None])  # (B, n, c)
        return (new_top, norm * rescale + probs.sum(-1),
                weighted * rescale + jnp.sum(probs * proj, axis=-1)), None

    init = (jnp.full(ys.shape, -jnp.inf, xs.dtype), jnp.zeros_like(ys), jnp.zeros_like(ys))
    (_, norm, weighted), _ = jax.lax.scan(accumulate, init, (chunks, real))
    return weighted / norm  # (B, n)
