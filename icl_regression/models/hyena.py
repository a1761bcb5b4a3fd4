"""Hyena (Poli et al. 2023), model `hyena`: pre-LN blocks h <- h + Hyena(LN h), h <- h +
MLP(LN h), the attention of a transformer replaced by the Hyena operator of order N (2):

    v, x_1, …, x_N = split(short causal conv(W_in u))          (B, T, D) each
    z = v;   for n = 1..N:  z = x_n ⊙ (h_n * z + β_n ⊙ z)       (data-controlled gating)
    out = W_out z

where `h_n * z` is a causal long convolution over all T tokens (y_t = Σ_{s<=t} h_n[t−s] z_s),
computed with the FFT in O(T log T), and the filters are implicit: h_n[t] = MLP(sin/cos
features of t) ⊙ exp(−α t), an MLP with sine activations of the position times a per-channel
decay window, so the filter has as many taps as the prompt has tokens without a parameter per
tap, and no table limits the prompt length. Tests check the FFT convolution against a direct
causal convolution.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from icl_regression.config import HyenaConfig, TaskConfig
from icl_regression.models.blocks import MLP, CausalConv
from icl_regression.models.registry import MODELS
from icl_regression.models.sequence import SequenceModel


def fft_causal_conv(kernel: jax.Array, u: jax.Array) -> jax.Array:
    """kernel (T, C), u (B, T, C) -> (B, T, C): y_t = Σ_{s<=t} kernel[t−s] u_s, via FFT of
    length 2T (no wrap-around)."""
    seq = u.shape[1]
    n = 2 * seq
    spectrum = jnp.fft.rfft(u.astype(jnp.float32), n=n, axis=1) * jnp.fft.rfft(
        kernel.astype(jnp.float32), n=n, axis=0)  # (B, n/2+1, C)
    return jnp.fft.irfft(spectrum, n=n, axis=1)[:, :seq].astype(u.dtype)


class ImplicitFilter(nnx.Module):
    """Positions t = 0..T−1 -> N filters (N, T, D): a sine-activated MLP of sin/cos features
    of t, times exp(−α_c t) with α_c spread geometrically over the channels."""

    def __init__(self, owner, width: int, order: int, hidden: int, n_features: int,
                 rngs: nnx.Rngs):
        self.order, self.width = order, width
        self.frequencies = tuple(float(f) for f in np.geomspace(1.0, 1e-2, n_features))
        self.decay = tuple(float(a) for a in np.geomspace(1.0, 1e-2, width))
        self.fc1 = owner.linear(2 * n_features, hidden, rngs)
        self.fc2 = owner.linear(hidden, hidden, rngs)
        self.fc3 = owner.linear(hidden, order * width, rngs)

    def __call__(self, seq: int) -> jax.Array:
        t = jnp.arange(seq, dtype=jnp.float32)[:, None]  # (T, 1)
        angles = t * jnp.asarray(self.frequencies)  # (T, F)
        features = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], -1)  # (T, 2F)
        h = jnp.sin(self.fc2(jnp.sin(self.fc1(features))))  # (T, W)
        filters = self.fc3(h).reshape(seq, self.order, self.width)  # (T, N, D)
        window = jnp.exp(-t * jnp.asarray(self.decay))  # (T, D)
        return jnp.swapaxes(filters * window[:, None, :], 0, 1)  # (N, T, D)


class HyenaOperator(nnx.Module):
    """(B, T, D) -> (B, T, D)."""

    def __init__(self, owner, model: HyenaConfig, out_std: float, rngs: nnx.Rngs):
        width, order = model.d_model, model.order
        self.order = order
        self.in_proj = owner.linear(width, (order + 1) * width, rngs)
        self.short_conv = CausalConv(owner, (order + 1) * width, model.short_conv, rngs)
        self.filters = ImplicitFilter(owner, width, order, model.filter_width,
                                      model.filter_features, rngs)
        self.skip = nnx.Param(jnp.ones((order, width), owner.param_dtype))
        self.out_proj = owner.linear(width, width, rngs, std=out_std)

    def __call__(self, u: jax.Array) -> jax.Array:
        projections = jnp.split(self.short_conv(self.in_proj(u)), self.order + 1, axis=-1)
        z, gates = projections[0], projections[1:]  # (B, T, D) each
        filters = self.filters(u.shape[1])  # (N, T, D)
        skip = self.skip[...].astype(u.dtype)
        for n, gate in enumerate(gates):
            z = gate * (fft_causal_conv(filters[n], z) + skip[n] * z)  # (B, T, D)
        return self.out_proj(z)


class HyenaBlock(nnx.Module):
    def __init__(self, owner, model: HyenaConfig, rngs: nnx.Rngs):
        out_std = 0.02 / math.sqrt(2 * model.n_layer)
        self.norm1, self.norm2 = owner.norm(model.d_model, rngs), owner.norm(model.d_model, rngs)
        self.mixer = HyenaOperator(owner, model, out_std, rngs)
        self.mlp = MLP(owner, model.d_model, model.mlp_ratio, out_std, rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        h = h + self.mixer(self.norm1(h))  # (B, T, D)
        return h + self.mlp(self.norm2(h))


@MODELS.register("hyena")
class Hyena(SequenceModel):
    """`n_layer` Hyena blocks (model.name=hyena); keys: config.HyenaConfig."""

    config_class = HyenaConfig

    def __init__(self, model: HyenaConfig, task: TaskConfig, *, rngs: nnx.Rngs):
        super().__init__(model, task, rngs=rngs)
        self.blocks = nnx.List([HyenaBlock(self, model, rngs) for _ in range(model.n_layer)])

    def layers(self, h: jax.Array, capture: bool):
        hidden = []
        for block in self.blocks:
            h = block(h)  # (B, T, D)
            hidden.append(h)
        return hidden, None
