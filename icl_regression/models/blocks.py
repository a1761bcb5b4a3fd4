"""Layers the sequence models share: a GELU MLP, causal softmax self-attention, a pre-LN
transformer block, and a depthwise causal convolution. Each is a Flax NNX module built through
a SequenceModel (models/sequence.py), which owns the dtypes."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


class MLP(nnx.Module):
    """(..., D) -> (..., D): GELU MLP of hidden width ratio·D, output scaled for residuals."""

    def __init__(self, owner, width: int, ratio: int, out_std: float, rngs: nnx.Rngs):
        self.fc = owner.linear(width, ratio * width, rngs, std=0.02)
        self.proj = owner.linear(ratio * width, width, rngs, std=out_std)

    def __call__(self, h: jax.Array) -> jax.Array:
        return self.proj(jax.nn.gelu(self.fc(h)))


def causal_softmax(q: jax.Array, k: jax.Array) -> jax.Array:
    """q, k (B, T, H, C) -> weights (B, H, T, T): query t on keys <= t."""
    seq = q.shape[1]
    logits = jnp.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(q.shape[-1])  # (B, H, T, T)
    causal = jnp.tril(jnp.ones((seq, seq), bool))
    logits = jnp.where(causal, logits.astype(jnp.float32), -1e30)
    return jax.nn.softmax(logits, axis=-1).astype(q.dtype)


class SelfAttention(nnx.Module):
    """Multi-head causal self-attention: h (B, T, D) -> (out (B, T, D), weights (B, H, T, T)).
    `weights_fn(q, k)` gives the mixing weights (default: causal softmax)."""

    def __init__(self, owner, width: int, n_head: int, out_std: float, rngs: nnx.Rngs,
                 weights_fn=causal_softmax):
        self.n_head = n_head
        self.weights_fn = weights_fn
        self.qkv = owner.linear(width, 3 * width, rngs, std=0.02)
        self.out = owner.linear(width, width, rngs, std=out_std)

    def heads(self, h: jax.Array):
        """q, k, v (B, T, H, C) each."""
        batch, seq, width = h.shape
        qkv = self.qkv(h).reshape(batch, seq, 3 * self.n_head, width // self.n_head)
        return jnp.split(qkv, 3, axis=2)

    def __call__(self, h: jax.Array):
        q, k, v = self.heads(h)  # (B, T, H, C) each
        weights = self.weights_fn(q, k)  # (B, H, T, T)
        mixed = jnp.einsum("bhqk,bkhc->bqhc", weights, v).reshape(h.shape)  # (B, T, D)
        return self.out(mixed), weights


class TransformerBlock(nnx.Module):
    """Pre-LN block: h + attention(LN h), then + MLP(LN h). Returns (h, attention weights)."""

    def __init__(self, owner, width: int, n_head: int, ratio: int, n_blocks: int,
                 rngs: nnx.Rngs, weights_fn=causal_softmax):
        out_std = 0.02 / math.sqrt(2 * n_blocks)  # residual branches scaled by depth
        self.norm1, self.norm2 = owner.norm(width, rngs), owner.norm(width, rngs)
        self.attention = SelfAttention(owner, width, n_head, out_std, rngs, weights_fn)
        self.mlp = MLP(owner, width, ratio, out_std, rngs)

    def __call__(self, h: jax.Array):
        mixed, weights = self.attention(self.norm1(h))
        h = h + mixed  # (B, T, D)
        return h + self.mlp(self.norm2(h)), weights


def causal_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Depthwise causal convolution: x (B, T, C), kernel (K, C) -> (B, T, C) with
    out[t] = sum_k kernel[k] · x[t - (K-1) + k] (zeros before the start)."""
    width = kernel.shape[0]
    padded = jnp.pad(x, ((0, 0), (width - 1, 0), (0, 0)))  # (B, T+K-1, C)
    return sum(kernel[k] * padded[:, k:k + x.shape[1]] for k in range(width))


class CausalConv(nnx.Module):
    """Depthwise causal convolution with bias, C channels, width K."""

    def __init__(self, owner, channels: int, width: int, rngs: nnx.Rngs):
        std = 1 / math.sqrt(width)
        self.kernel = nnx.Param(std * jax.random.normal(rngs.params(), (width, channels),
                                                        owner.param_dtype))
        self.bias = nnx.Param(jnp.zeros((channels,), owner.param_dtype))
        self.dtype = owner.dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias = self.kernel[...].astype(self.dtype), self.bias[...].astype(self.dtype)
        return causal_conv(x, kernel) + bias
