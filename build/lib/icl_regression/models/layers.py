"""Pieces every model shares: the dtype names of the config, and layer normalisation."""

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
