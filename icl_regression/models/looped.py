"""Looped transformer (Yang et al. 2024), model `looped`: one GPT-style block (n_layer pre-LN
layers, models/blocks.py) applied n_loops times with input injection,

    e = read-in(tokens) + positions,   h_0 = 0,   h_k = Block(h_{k−1} + e)   (k = 1..n_loops),

and the prediction read from h_{n_loops} (final LayerNorm + linear map). The parameters do not
depend on the number of loops, so a model trained with n_loops = b can be run with more:
`with_loops(run, k)` (or a run's config with another `model.n_loops`, its checkpoint restored).
The contract's layers are the loops: `residuals` holds e, then h_1 … h_{n_loops}.

Not here yet: the loop curriculum of the paper (n_loops growing during training, the loss
averaged over the last loops); training uses a fixed n_loops.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from icl_regression.config import LoopedConfig, TaskConfig
from icl_regression.data import tokens
from icl_regression.models.blocks import TransformerBlock
from icl_regression.models.registry import MODELS
from icl_regression.models.sequence import SequenceModel


@MODELS.register("looped")
class Looped(SequenceModel):
    """One block of `n_layer` layers looped `n_loops` times; keys: config.LoopedConfig."""

    config_class = LoopedConfig

    has_attention = True

    def __init__(self, model: LoopedConfig, task: TaskConfig, *, rngs: nnx.Rngs):
        super().__init__(model, task, rngs=rngs)
        self.loops = model.n_loops
        learned = model.positions == "learned"
        self.table_points = (model.max_len or task.n_points) if learned else None
        if learned:
            rows = tokens.seq_len(model.encoding, self.table_points)
            self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (rows, model.d_model),
                                                          self.param_dtype))
        self.block = nnx.List([
            TransformerBlock(self, model.d_model, model.n_head, model.mlp_ratio, model.n_layer,
                             rngs) for _ in range(model.n_layer)])

    @property
    def n_layers(self) -> int:
        return self.loops

    @property
    def max_points(self) -> int | None:
        return self.table_points

    def embed(self, toks: jax.Array) -> jax.Array:
        h = self.read_in(toks)  # (B, T, D)
        if self.table_points is None:
            return h
        return h + self.pos[...][:toks.shape[1]].astype(self.dtype)

    def layers(self, e: jax.Array, capture: bool):
        h, hidden, attention = jnp.zeros_like(e), [], []
        for _ in range(self.loops):
            h = h + e  # input injection
            for layer in self.block:
                h, weights = layer(h)  # (B, T, D), (B, H, T, T)
                attention.append(weights)
            hidden.append(h)
        return hidden, attention


def with_loops(run, n_loops: int):
    """The run (`icl_regression.run.Run`) with its model looped `n_loops` times, same
    parameters; its config says so (model.n_loops)."""
    model = nnx.clone(run.model)
    model.loops = n_loops
    config = dataclasses.replace(run.config, model=dataclasses.replace(run.config.model,
                                                                       n_loops=n_loops))
    return dataclasses.replace(run, config=config, model=model)
