"""Pieces every model shares: the dtype names of the config, layer normalisation, and a
projection whose weight gradient XLA lays out well on CPU."""

from __future__ import annotations

import jax
import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def layer_norm(h: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """LayerNorm over the last axis; statistics in float32 whatever the compute dtype (for a
    float32 model this is the plain formula)."""
    h32 = h.astype(jnp.float32)
    mean = h32.mean(-1, keepdims=True)
    var = jnp.square(h32 - mean).mean(-1, keepdims=True)
    return ((h32 - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias).astype(h.dtype)


@jax.custom_vjp
def project(x: jax.Array, w: jax.Array) -> jax.Array:
    """`x @ w` for x (..., D_in), w (D_in, D_out), with the same gradients, and a backward pass
    written out so that XLA cannot fuse the transpose the weight gradient needs into whatever
    produced the incoming gradient: on CPU that fusion writes transposed, strided, and ran
    several times slower than a plain transpose (docs/benchmarks.md, "engine levers").
    Reverse mode only (a custom VJP has no forward mode): the GPT uses it in its training
    forward alone. A JVP rule with the same barrier was tried: under remat XLA fused the
    transpose back in."""
    return x @ w


def _project_fwd(x, w):
    return x @ w, (x, w)


def _project_bwd(saved, grad):
    x, w = saved
    grad = jax.lax.optimization_barrier(grad)  # (..., D_out), materialised as it was produced
    grad_x = grad @ w.T  # (..., D_in)
    grad_w = jnp.einsum("...i,...o->io", x, grad)  # (D_in, D_out)
    return grad_x, grad_w


project.defvjp(_project_fwd, _project_bwd)
