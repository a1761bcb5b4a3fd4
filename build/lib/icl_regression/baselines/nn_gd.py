"""nn_gd: a two-layer ReLU net fitted to every prefix by Adam (Garg et al.'s relu2nn baseline)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from icl_regression.baselines.registry import register_baseline
from icl_regression.baselines.solvers import einsum, over_chunks

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


def nn_init(key: jax.Array, batch: int, n: int, hidden: int, d: int):
    """One net per (prompt, prefix): u (B, n, H, d) ~ N(0, 1/d), a (B, n, H) ~ N(0, 1/H)."""
    u_key, a_key = jax.random.split(key)
    u = jax.random.normal(u_key, (batch, n, hidden, d), jnp.float32) / jnp.sqrt(d)
    a = jax.random.normal(a_key, (batch, n, hidden), jnp.float32) / jnp.sqrt(hidden)
    return u, a


def nn_outputs(params, xs: jax.Array) -> jax.Array:
    """Net i of each prompt on every point j: (B, i, j) = Σ_h a_ih ReLU(u_ih · x_j)."""
    u, a = params
    return einsum("bijh,bih->bij", jax.nn.relu(einsum("bihd,bjd->bijh", u, xs)), a)


def fit_nets(params, xs: jax.Array, ys: jax.Array, steps: int, lr: float):
    """Adam on each net's mean squared error over its prefix (pairs j < i). The nets share no
    parameters, so one gradient of the summed losses is every net's own gradient."""
    n = xs.shape[1]
    before = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # (i, j): j < i
    weight = before / jnp.maximum(before.sum(axis=1, keepdims=True), 1)  # (i, j): 1/i

    def loss(p):
        return jnp.sum(weight * (nn_outputs(p, xs) - ys[:, None, :]) ** 2)

    def adam(carry, t):  # Kingma & Ba's update with bias-corrected moments
        p, m, v = carry
        g = jax.grad(loss)(p)
        m = jax.tree.map(lambda m, g: ADAM_B1 * m + (1 - ADAM_B1) * g, m, g)
        v = jax.tree.map(lambda v, g: ADAM_B2 * v + (1 - ADAM_B2) * g * g, v, g)
        p = jax.tree.map(lambda p, m, v: p - lr * (m / (1 - ADAM_B1**t)) / (
            jnp.sqrt(v / (1 - ADAM_B2**t)) + ADAM_EPS), p, m, v)
        return (p, m, v), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    (params, _, _), _ = jax.lax.scan(adam, (params, zeros, zeros),
                                     jnp.arange(1, steps + 1, dtype=jnp.float32))
    return params


@register_baseline("nn_gd", expensive=True, predictors=lambda ctx: {
    f"nn_gd(hidden={ctx.task.hidden_width})": {"hidden": ctx.task.hidden_width}})
@partial(jax.jit, static_argnames=("hidden", "steps", "chunk"))
def nn_gd_predict(xs: jax.Array, ys: jax.Array, hidden: int = 100, steps: int = 500,
                  lr: float = 0.01, seed: int = 0, chunk: int = 64) -> jax.Array:
    """Prediction at i: net i (fitted on pairs 0..i−1 from its own random init) at x_i; 0 for
    the empty prefix. The inits are keyed by `seed`, so results are reproducible."""
    batch, n, d = xs.shape
    u, a = nn_init(jax.random.key(seed), batch, n, hidden, d)

    def fit_predict(u, a, x, y):
        params = fit_nets((u, a), x, y, steps, lr)
        return jnp.diagonal(nn_outputs(params, x), axis1=1, axis2=2)  # (c, n): net i at x_i

    preds = over_chunks(fit_predict, u, a, xs, ys, chunk=chunk)  # (B, n)
    return jnp.where(jnp.arange(n) > 0, preds, 0.0)
