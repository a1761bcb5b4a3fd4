"""The model contract (models/contract.py) once for every model that reads the prompt as a
token sequence: the project's token encodings (data/tokens.py), a linear read-in to width
d_model, a stack of layers the subclass defines, and the read-out every layer can be lensed
through (final LayerNorm + linear map to one scalar), as the GPT's.

A subclass builds its layers in `__init__` (after `super().__init__`) and implements `layers(h,
capture)`: the hidden state after each layer and, for models with attention, each attention
layer's weights. Everything else (predictions at the x tokens, intermediates, positions) is here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from icl_regression.config import ModelConfig, TaskConfig
from icl_regression.data import tokens
from icl_regression.models.layers import DTYPES


class SequenceModel(nnx.Module):
    """Read-in, `layers`, read-out; the contract's members for token-sequence models."""

    has_attention = False
    max_points = None  # no positional table: any prompt length

    def __init__(self, model: ModelConfig, task: TaskConfig, *, rngs: nnx.Rngs):
        self.encoding = model.encoding
        self.depth = model.n_layer
        self.dtype = DTYPES[model.dtype]
        self.param_dtype = DTYPES[model.param_dtype]
        width = model.d_model
        self.read_in = self.linear(tokens.token_width(model.encoding, task.d), width, rngs)
        self.final_norm = self.norm(width, rngs)
        self.head = self.linear(width, 1, rngs)

    def linear(self, n_in: int, n_out: int, rngs: nnx.Rngs, bias: bool = True,
               std: float | None = None) -> nnx.Linear:
        """A dense layer in this model's dtypes; weights N(0, std²), default 1/√n_in."""
        init = jax.nn.initializers.normal(std if std is not None else n_in ** -0.5)
        return nnx.Linear(n_in, n_out, use_bias=bias, kernel_init=init, dtype=self.dtype,
                          param_dtype=self.param_dtype, rngs=rngs)

    def norm(self, width: int, rngs: nnx.Rngs) -> nnx.LayerNorm:
        return nnx.LayerNorm(width, epsilon=1e-5, dtype=self.dtype,
                             param_dtype=self.param_dtype, rngs=rngs)

    @property
    def n_layers(self) -> int:
        return self.depth

    def embed(self, toks: jax.Array) -> jax.Array:
        """Tokens (B, T, F) -> the hidden state before the first layer (B, T, D)."""
        return self.read_in(toks)

    def layers(self, h: jax.Array, capture: bool) -> tuple[list, list | None]:
        """h (B, T, D) -> (hidden state after each layer [(B, T, D)] * n_layers, attention
        weights [(B, H, T, T)] per attention layer, or None without attention)."""
        raise NotImplementedError

    @staticmethod
    def residual_stack(h: jax.Array, norms, mixers) -> tuple[list, None]:
        """Pre-norm residual layers h + mixer(norm(h)), no attention: the `layers` of the
        recurrent and state-space stacks."""
        hidden = []
        for norm, mixer in zip(norms, mixers, strict=True):
            h = h + mixer(norm(h))  # (B, T, D)
            hidden.append(h)
        return hidden, None

    def lens(self, hidden: jax.Array) -> jax.Array:
        """Final LayerNorm + read-out: (..., D) -> (...) float32."""
        out = self.head(self.final_norm(hidden.astype(self.dtype)))  # (..., 1)
        return out[..., 0].astype(jnp.float32)

    def _forward(self, xs: jax.Array, ys: jax.Array, capture: bool):
        toks = tokens.encode(xs, ys, self.encoding).astype(self.dtype)  # (B, T, F)
        h0 = self.embed(toks)  # (B, T, D)
        hidden, attention = self.layers(h0, capture)
        preds = self.lens(hidden[-1][:, self.x_positions(xs.shape[1])])  # (B, n)
        if not capture:
            return preds, None
        captured = {"residuals": jnp.stack([h0, *hidden]).astype(jnp.float32)}  # (L+1,B,T,D)
        if self.has_attention:
            captured["attention"] = jnp.stack(attention).astype(jnp.float32)  # (La,B,H,T,T)
        return preds, captured

    def __call__(self, xs: jax.Array, ys: jax.Array) -> jax.Array:
        """xs (B, n, d), ys (B, n) -> preds (B, n); preds[:, i] sees pairs < i and x_i."""
        return self._forward(xs, ys, capture=False)[0]

    def intermediates(self, xs: jax.Array, ys: jax.Array) -> dict:
        """preds (B, n), residuals (n_layers + 1, B, T, D), attention where the model has it."""
        preds, captured = self._forward(xs, ys, capture=True)
        return {"preds": preds, **captured}

    def n_tokens(self, n_points: int) -> int:
        return tokens.seq_len(self.encoding, n_points)

    def x_positions(self, n_points: int) -> np.ndarray:
        return tokens.x_positions(self.encoding, n_points)

    def y_positions(self, n_points: int) -> np.ndarray | None:
        return tokens.y_positions(self.encoding, n_points)
