"""Mamba-1 (Gu & Dao 2023): residual blocks h <- h + Mixer(LayerNorm(h)) around the S6
selective state-space layer (model `mamba`; the mixer is reused by `mambaformer`).

Mixer, inner width E = expand · d_model, state size N per channel, Δ rank R = ceil(d_model/16):

    x, z = split(W_in u)                               (B, T, E) each
    x = SiLU(depthwise causal conv_K(x))
    Δ = softplus(W_Δ (W_x x)[:R] + b_Δ),  B_t, C_t = (W_x x)[R:R+N], (W_x x)[R+N:]   input-dependent
    s_t = exp(Δ_t A) ⊙ s_{t-1} + (Δ_t x_t) B_t         s_t (E, N), A = −exp(A_log) (E, N)
    y_t = s_t C_t + D ⊙ x_t,     out = W_out (y ⊙ SiLU(z))

The recurrence s_t = a_t s_{t-1} + b_t is a linear scan, run with `jax.lax.associative_scan`
on the pairs (a, b) ∘ (a', b') = (a a', a' b + b') (log-depth, all tokens in parallel); tests
check it against a plain sequential float64 NumPy loop. Initialisation as the reference
implementation: A_log = log(1..N) per channel (S4D-real), D = 1, Δ's bias the inverse softplus
of Δ drawn log-uniformly in [1e-3, 1e-1].

`mamba2-jax` (PyPI, 1.1.2) was read and not used: it implements Mamba-2 (SSD: one scalar decay
per head, chunked matrix form), not the Mamba-1 S6 layer with a per-channel, per-state A asked
for here; it is a language model (vocabulary embedding, Hugging Face weight loading) rather than
a mixer on our token stream; and it would add a dependency (it pins only lower bounds, jax>=0.8
and flax>=0.12, so it would install next to jax 0.10 and flax 0.12.8, and pulls optax). The S6
layer is ~40 lines here.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from icl_regression.config import MambaConfig, TaskConfig
from icl_regression.models.blocks import CausalConv
from icl_regression.models.registry import MODELS
from icl_regression.models.sequence import SequenceModel


def selective_scan(x: jax.Array, delta: jax.Array, a: jax.Array, b: jax.Array, c: jax.Array,
                   d: jax.Array) -> jax.Array:
    """The S6 recurrence. x, delta (Bt, T, E); a (E, N); b, c (Bt, T, N); d (E,) -> y (Bt, T, E)
    with s_t = exp(Δ_t a) s_{t-1} + Δ_t x_t b_t (s_{-1} = 0) and y_t = s_t c_t + d x_t."""
    decay = jnp.exp(delta[..., None] * a)  # (Bt, T, E, N)
    drive = (delta * x)[..., None] * b[:, :, None, :]  # (Bt, T, E, N)

    def combine(earlier, later):
        a1, b1 = earlier
        a2, b2 = later
        return a1 * a2, a2 * b1 + b2

    _, states = jax.lax.associative_scan(combine, (decay, drive), axis=1)  # (Bt, T, E, N)
    return jnp.einsum("bten,btn->bte", states, c) + d * x


class MambaMixer(nnx.Module):
    """The S6 mixer: (B, T, D) -> (B, T, D)."""

    def __init__(self, owner, width: int, d_state: int, d_conv: int, expand: int,
                 out_std: float, rngs: nnx.Rngs):
        inner, self.rank, self.d_state = expand * width, math.ceil(width / 16), d_state
        self.in_proj = owner.linear(width, 2 * inner, rngs, bias=False)
        self.conv = CausalConv(owner, inner, d_conv, rngs)
        self.x_proj = owner.linear(inner, self.rank + 2 * d_state, rngs, bias=False)
        self.dt_proj = owner.linear(self.rank, inner, rngs, std=self.rank ** -0.5)
        dt = jnp.exp(jax.random.uniform(rngs.params(), (inner,), minval=math.log(1e-3),
                                        maxval=math.log(1e-1)))
        self.dt_proj.bias[...] = (dt + jnp.log(-jnp.expm1(-dt))).astype(owner.param_dtype)
        self.a_log = nnx.Param(jnp.log(jnp.broadcast_to(
            jnp.arange(1, d_state + 1, dtype=owner.param_dtype), (inner, d_state))))
        self.skip = nnx.Param(jnp.ones((inner,), owner.param_dtype))
        self.out_proj = owner.linear(inner, width, rngs, bias=False, std=out_std)

    def __call__(self, u: jax.Array) -> jax.Array:
        x, z = jnp.split(self.in_proj(u), 2, axis=-1)  # (B, T, E) each
        x = jax.nn.silu(self.conv(x))
        proj = self.x_proj(x)  # (B, T, R + 2N)
        rank, n = self.rank, self.d_state
        delta = jax.nn.softplus(self.dt_proj(proj[..., :rank]))  # (B, T, E)
        f32 = lambda v: v.astype(jnp.float32)
        y = selective_scan(f32(x), f32(delta), -jnp.exp(f32(self.a_log[...])),
                           f32(proj[..., rank:rank + n]), f32(proj[..., rank + n:]),
                           f32(self.skip[...]))  # (B, T, E)
        return self.out_proj(y.astype(u.dtype) * jax.nn.silu(z))


@MODELS.register("mamba")
class Mamba(SequenceModel):
    """`n_layer` residual Mamba blocks (model.name=mamba); keys: config.MambaConfig."""

    config_class = MambaConfig

    def __init__(self, model: MambaConfig, task: TaskConfig, *, rngs: nnx.Rngs):
        super().__init__(model, task, rngs=rngs)
        width, out_std = model.d_model, 0.02 / math.sqrt(model.n_layer)
        self.norms = nnx.List([self.norm(width, rngs) for _ in range(model.n_layer)])
        self.mixers = nnx.List([
            MambaMixer(self, width, model.d_state, model.d_conv, model.expand, out_std, rngs)
            for _ in range(model.n_layer)])

    def layers(self, h: jax.Array, capture: bool):
        return self.residual_stack(h, self.norms, self.mixers)
