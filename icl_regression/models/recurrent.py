"""Stacked LSTM and GRU over the prompt's tokens (models `lstm`, `gru`).

Layer l: h <- h + RNN_l(LayerNorm(h)), the recurrence run over the T tokens with
`jax.lax.scan`; the residual stream after each layer is what `intermediates` captures. Cell
equations (hidden width D = d_model, input u_t = the normalised stream at token t):

    LSTM: i, f, g, o = σ(W_i u + U_i h + b_i), σ(... + 1), tanh(...), σ(...)
          c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)            (forget bias +1)
    GRU:  r, z = σ(W_r u + U_r h + b_r), σ(W_z u + U_z h + b_z)
          n = tanh(W_n u + b_n + r ⊙ (U_n h + b_hn)),   h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

Both are causal by construction: token t's state depends on tokens <= t only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from icl_regression.config import GRUConfig, LSTMConfig, TaskConfig
from icl_regression.models.registry import MODELS
from icl_regression.models.sequence import SequenceModel


def lstm_scan(u: jax.Array, w_in: jax.Array, w_rec: jax.Array, bias: jax.Array) -> jax.Array:
    """u (B, T, D), w_in (D, 4H), w_rec (H, 4H), bias (4H,) -> hidden states (B, T, H)."""
    hidden = w_rec.shape[0]
    pre = u @ w_in + bias  # (B, T, 4H): the input part of every gate, all tokens at once

    def step(carry, pre_t):
        h, c = carry  # (B, H) each
        i, f, g, o = jnp.split(pre_t + h @ w_rec, 4, axis=-1)
        c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((u.shape[0], hidden), u.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(pre, 0, 1))  # (T, B, H)
    return jnp.swapaxes(hs, 0, 1)


def gru_scan(u: jax.Array, w_in: jax.Array, w_rec: jax.Array, bias: jax.Array,
             bias_rec: jax.Array) -> jax.Array:
    """u (B, T, D), w_in (D, 3H), w_rec (H, 3H), bias (3H,), bias_rec (H,) -> (B, T, H)."""
    hidden = w_rec.shape[0]
    pre = u @ w_in + bias  # (B, T, 3H)

    def step(h, pre_t):
        rec = h @ w_rec  # (B, 3H)
        r = jax.nn.sigmoid(pre_t[:, :hidden] + rec[:, :hidden])
        z = jax.nn.sigmoid(pre_t[:, hidden:2 * hidden] + rec[:, hidden:2 * hidden])
        n = jnp.tanh(pre_t[:, 2 * hidden:] + r * (rec[:, 2 * hidden:] + bias_rec))
        h = (1 - z) * n + z * h
        return h, h

    zeros = jnp.zeros((u.shape[0], hidden), u.dtype)
    _, hs = jax.lax.scan(step, zeros, jnp.swapaxes(pre, 0, 1))  # (T, B, H)
    return jnp.swapaxes(hs, 0, 1)


class RecurrentLayer(nnx.Module):
    """One LSTM (gates=4) or GRU (gates=3) layer: (B, T, D) -> (B, T, D)."""

    def __init__(self, owner, width: int, gates: int, rngs: nnx.Rngs):
        std = width ** -0.5
        self.gates = gates
        self.dtype = owner.dtype
        normal = lambda *shape: nnx.Param(std * jax.random.normal(rngs.params(), shape,
                                                                  owner.param_dtype))
        self.w_in = normal(width, gates * width)
        self.w_rec = normal(width, gates * width)
        self.bias = nnx.Param(jnp.zeros((gates * width,), owner.param_dtype))
        if gates == 3:
            self.bias_rec = nnx.Param(jnp.zeros((width,), owner.param_dtype))

    def __call__(self, u: jax.Array) -> jax.Array:
        cast = lambda p: p[...].astype(self.dtype)
        if self.gates == 4:
            return lstm_scan(u, cast(self.w_in), cast(self.w_rec), cast(self.bias))
        return gru_scan(u, cast(self.w_in), cast(self.w_rec), cast(self.bias),
                        cast(self.bias_rec))


class StackedRNN(SequenceModel):
    """`n_layer` residual recurrent layers with a LayerNorm before each."""

    gates = 4

    def __init__(self, model, task: TaskConfig, *, rngs: nnx.Rngs):
        super().__init__(model, task, rngs=rngs)
        width = model.d_model
        self.norms = nnx.List([self.norm(width, rngs) for _ in range(model.n_layer)])
        self.cells = nnx.List([RecurrentLayer(self, width, self.gates, rngs)
                               for _ in range(model.n_layer)])

    def layers(self, h: jax.Array, capture: bool):
        return self.residual_stack(h, self.norms, self.cells)


@MODELS.register("lstm")
class LSTM(StackedRNN):
    """Stacked LSTM (model.name=lstm); keys: config.LSTMConfig."""

    config_class = LSTMConfig

    gates = 4


@MODELS.register("gru")
class GRU(StackedRNN):
    """Stacked GRU (model.name=gru); keys: config.GRUConfig."""

    config_class = GRUConfig

    gates = 3
