"""Looped transformer (Yang et al. 2024), model `looped`: one GPT-style block (n_layer pre-LN
layers, models/blocks.py) applied n_loops times with input injection,

    e = read-in(tokens) + positions,   h_0 = 0,   h_k = Block(h_{k−1} + e)   (k = 1..n_loops),

and the prediction read from h_{n_loops} (final LayerNorm + linear map). The parameters do not
depend on the number of loops, so a model trained with n_loops = b can be run with more:
`with_loops(run, k)` (or a run's config with another `model.n_loops`, its checkpoint restored).
The contract's layers are the loops: `residuals` holds e, then h_1 … h_{n_loops}.

Loop curriculum (Yang et al. 2024, as we read it): at step s training runs
b(s) = min(n_loops, loops_start + s // loops_every) loops (loops_start = 0: n_loops
throughout), and the loss is the mean of the losses of the last T = loop_window loops'
predictions (each read out through the final LayerNorm and head), gradient through those T
loops only: the first b − T loops run with the parameters and the injected input under
stop-gradient, as a `fori_loop` with a traced trip count (so one compiled step serves every b).
When b < T, the window holds the b loops there are. The train loop asks for this through
`training_predictions(xs, ys, step)`; prediction and evaluation always run `loops` loops.
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
        self.loops_start, self.loops_every = model.loops_start, model.loops_every
        self.loop_window = model.loop_window
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
            h, weights = self.loop(self.block, h, e)
            attention.extend(weights)
            hidden.append(h)
        return hidden, attention

    @staticmethod
    def loop(block, h: jax.Array, e: jax.Array) -> tuple[jax.Array, list]:
        """One application of the block with input injection: (h (B, T, D), its attention
        weights [(B, H, T, T)] per layer)."""
        h, attention = h + e, []
        for layer in block:
            h, weights = layer(h)
            attention.append(weights)
        return h, attention

    def loops_at(self, step) -> jax.Array:
        """Loops the curriculum trains with at `step` (traced or int)."""
        if self.loops_start == 0:
            return jnp.asarray(self.loops)
        return jnp.minimum(self.loops, self.loops_start + step // self.loops_every)

    def training_predictions(self, xs: jax.Array, ys: jax.Array, step) -> tuple:
        """(preds (W, B, n) of the loops in the loss window, weights (W,): 1 for a loop that
        ran, 0 for window slots before the first loop); W = loop_window, or 1 (the last loop)."""
        if self.loop_window == 0 and self.loops_start == 0:
            return self(xs, ys)[None], jnp.ones((1,), jnp.float32)
        window = self.loop_window or 1
        toks = tokens.encode(xs, ys, self.encoding).astype(self.dtype)  # (B, T, F)
        e = self.embed(toks)  # (B, T, D)
        total = self.loops_at(step)
        graphdef, state = nnx.split(self.block)
        frozen = jax.lax.stop_gradient(state)  # burn-in loops: no gradient, no backward pass
        burn_in = lambda _, h: self.loop(nnx.merge(graphdef, frozen), h,
                                         jax.lax.stop_gradient(e))[0]
        h = jax.lax.fori_loop(0, jnp.maximum(total - window, 0), burn_in, jnp.zeros_like(e))
        at = self.x_positions(xs.shape[1])
        preds, ran = [], []
        for slot in range(window):  # loop number total − window + slot (0-based)
            runs = total - window + slot >= 0
            h = jnp.where(runs, self.loop(self.block, h, e)[0], h)
            preds.append(self.lens(h[:, at]))
            ran.append(runs)
        return jnp.stack(preds), jnp.stack(ran).astype(jnp.float32)


def with_loops(run, n_loops: int):
    """The run (`icl_regression.run.Run`) with its model looped `n_loops` times, same
    parameters; its config says so (model.n_loops)."""
    model = nnx.clone(run.model)
    model.loops = n_loops
    config = dataclasses.replace(run.config, model=dataclasses.replace(run.config.model,
                                                                       n_loops=n_loops))
    return dataclasses.replace(run, config=config, model=model)
