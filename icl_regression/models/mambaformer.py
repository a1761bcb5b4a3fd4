"""MambaFormer (Park et al. 2024, "Can Mamba learn how to learn?"), model `mambaformer`: a
Mamba block first, in place of the positional embedding, then n_layer pairs of (causal softmax
attention block, Mamba block), the Mamba block in place of the transformer's MLP; every block
pre-LN and residual. There is no positional embedding: the first Mamba block's causal
recurrence is what tells tokens apart by position.

The contract's layers are the 1 + 2·n_layer blocks (`residuals` after the read-in and after
each block); `attention` holds the n_layer attention blocks' weights.
"""

from __future__ import annotations

import math

import jax
from flax import nnx

from icl_regression.config import MambaFormerConfig, TaskConfig
from icl_regression.models.blocks import SelfAttention
from icl_regression.models.mamba import MambaMixer
from icl_regression.models.registry import MODELS
from icl_regression.models.sequence import SequenceModel


@MODELS.register("mambaformer")
class MambaFormer(SequenceModel):
    """Mamba, then (attention, Mamba) × n_layer; keys: config.MambaFormerConfig."""

    config_class, has_attention = MambaFormerConfig, True  # its attention blocks

    def __init__(self, model: MambaFormerConfig, task: TaskConfig, *, rngs: nnx.Rngs):
        super().__init__(model, task, rngs=rngs)
        width, n_blocks = model.d_model, 1 + 2 * model.n_layer
        self.depth = n_blocks
        out_std = 0.02 / math.sqrt(n_blocks)
        mamba = lambda: MambaMixer(self, width, model.d_state, model.d_conv, model.expand,
                                   out_std, rngs)
        self.norms = nnx.List([self.norm(width, rngs) for _ in range(n_blocks)])
        self.mixers = nnx.List([
            mamba() if i % 2 == 0 else SelfAttention(self, width, model.n_head, out_std, rngs)
            for i in range(n_blocks)])

    def layers(self, h: jax.Array, capture: bool):
        hidden, attention = [], []
        for i, (norm, mixer) in enumerate(zip(self.norms, self.mixers, strict=True)):
            if i % 2 == 0:  # Mamba blocks: 0, 2, 4, …
                h = h + mixer(norm(h))  # (B, T, D)
            else:
                mixed, weights = mixer(norm(h))  # (B, T, D), (B, H, T, T)
                h = h + mixed
                attention.append(weights)
            hidden.append(h)
        return hidden, attention
