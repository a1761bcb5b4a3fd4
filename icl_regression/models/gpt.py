"""Decoder-only softmax transformer (GPT-2 style) that reads a regression prompt.

Pre-LayerNorm blocks, learned absolute positions, causal softmax attention, GELU MLP, a linear
read-in from tokens and a linear read-out to one scalar per token.

The L blocks are stored as stacked parameters (leading axis L) and applied with `lax.scan`, so
XLA compiles one block however deep the model is (a 12-layer model compiles as fast as a
1-layer one) and the per-layer residual stream and attention weights fall out of the scan as
stacked outputs — the same forward serves training, probes and figures (training routes the
attention-output projection through `layers.project`, same math, a faster backward on CPU).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from icl_regression.config import GPTConfig, TaskConfig
from icl_regression.data import tokens
from icl_regression.models.layers import DTYPES, layer_norm, project
from icl_regression.models.registry import MODELS

# model.remat -> the checkpoint policy of each block (None: save every residual).
REMAT_POLICIES = {"none": None, "dots": jax.checkpoint_policies.dots_saveable,
                  "full": jax.checkpoint_policies.nothing_saveable}


@MODELS.register("gpt")
class GPT(nnx.Module):
    """`model(xs, ys) -> preds (B, n)`; `model.intermediates(xs, ys)` adds hidden states.
    Satisfies the model contract (models/contract.py)."""

    has_attention = True
    config_class = GPTConfig  # its keys (config/models.py), for subclasses registered anew

    def __init__(self, model: GPTConfig, task: TaskConfig, *, rngs: nnx.Rngs):
        self.encoding = model.encoding
        self.depth = model.n_layer
        learned = model.positions == "learned"
        self.table_points = (model.max_len or task.n_points) if learned else None
        self.n_head = model.n_head
        self.use_positions = model.positions == "learned"
        self.dtype = DTYPES[model.dtype]
        self.remat = REMAT_POLICIES[model.remat]
        param_dtype = DTYPES[model.param_dtype]
        n_layer, width, hidden = model.n_layer, model.d_model, model.mlp_ratio * model.d_model
        n_in = tokens.token_width(model.encoding, task.d)
        max_tokens = tokens.seq_len(model.encoding, model.max_len or task.n_points)

        def normal(std: float, *shape: int) -> nnx.Param:
            return nnx.Param(std * jax.random.normal(rngs.params(), shape, param_dtype))

        def const(value: float, *shape: int) -> nnx.Param:
            return nnx.Param(jnp.full(shape, value, param_dtype))

        # Residual-branch outputs are scaled down by √(2L) so the stream's variance stays O(1).
        out_std = 0.02 / math.sqrt(2 * n_layer)
        self.read_in = normal(1 / math.sqrt(n_in), n_in, width)
        self.read_in_bias = const(0.0, width)
        self.pos = normal(0.02, max_tokens, width)
        self.ln1_scale, self.ln1_bias = const(1.0, n_layer, width), const(0.0, n_layer, width)
        self.w_qkv = normal(0.02, n_layer, width, 3 * width)
        self.b_qkv = const(0.0, n_layer, 3 * width)
        self.w_attn_out = normal(out_std, n_layer, width, width)
        self.b_attn_out = const(0.0, n_layer, width)
        self.ln2_scale, self.ln2_bias = const(1.0, n_layer, width), const(0.0, n_layer, width)
        self.w_fc = normal(0.02, n_layer, width, hidden)
        self.b_fc = const(0.0, n_layer, hidden)
        self.w_proj = normal(out_std, n_layer, hidden, width)
        self.b_proj = const(0.0, n_layer, width)
        self.lnf_scale, self.lnf_bias = const(1.0, width), const(0.0, width)
        self.read_out = normal(1 / math.sqrt(width), width, 1)
        self.read_out_bias = const(0.0, 1)

    def _heads(self, h: jax.Array, layer: dict):
        """The first LayerNorm and the fused QKV projection: q, k, v (..., H, C) each."""
        a = layer_norm(h, layer["ln1_scale"], layer["ln1_bias"])
        qkv = a @ layer["w_qkv"] + layer["b_qkv"]  # (..., 3D)
        head_dim = h.shape[-1] // self.n_head
        return jnp.split(qkv.reshape(*h.shape[:-1], 3 * self.n_head, head_dim), 3, axis=-2)

    def _mlp(self, h: jax.Array, layer: dict) -> jax.Array:
        """The second half of a block, residual included: (..., D) -> (..., D)."""
        m = layer_norm(h, layer["ln2_scale"], layer["ln2_bias"])
        m = jax.nn.gelu(m @ layer["w_fc"] + layer["b_fc"])  # (..., 4D)
        return h + m @ layer["w_proj"] + layer["b_proj"]

    def _block(self, h: jax.Array, layer: dict, with_attention: bool, training: bool = False):
        """One pre-LN block. h (B, T, D) -> (B, T, D), attention (B, H, T, T) or None.

        Heads major: the QKV projection writes q, k, v straight as (B, H, T, C), so the
        attention dots need no transposes; in training, the attention output's projection is
        `project` (its weight gradient's transpose stays out of the LayerNorm backward; reverse
        mode only, so prediction keeps a plain matmul, which forward-mode metrics need).
        Together ×1.06 on the paper-sized CPU step (docs/benchmarks.md); the math is the
        token-major block's (tests/models/test_engine.py)."""
        batch, seq, width = h.shape
        heads, head_dim = self.n_head, width // self.n_head
        a = layer_norm(h, layer["ln1_scale"], layer["ln1_bias"])
        w_qkv = layer["w_qkv"].reshape(width, 3, heads, head_dim)
        b_qkv = layer["b_qkv"].reshape(3, 1, heads, 1, head_dim)
        q, k, v = jnp.einsum("btd,dshc->sbhtc", a, w_qkv) + b_qkv  # (B, H, T, C) each
        logits = jnp.einsum("bhqc,bhkc->bhqk", q, k) / math.sqrt(head_dim)  # (B, H, T, T)
        causal = jnp.tril(jnp.ones((seq, seq), bool))
        logits = jnp.where(causal, logits.astype(jnp.float32), -1e30)
        weights = jax.nn.softmax(logits, axis=-1).astype(h.dtype)  # (B, H, T, T)
        mixed = jnp.einsum("bhqk,bhkc->bhqc", weights, v)  # (B, H, T, C)
        mixed = jnp.swapaxes(mixed, 1, 2).reshape(batch, seq, width)  # (B, T, D)
        out = (project if training else jnp.matmul)(mixed, layer["w_attn_out"])  # (B, T, D)
        h = h + out + layer["b_attn_out"]
        return self._mlp(h, layer), (weights if with_attention else None)

    def _query_block(self, hq: jax.Array, k: jax.Array, v: jax.Array, at: np.ndarray,
                     layer: dict) -> jax.Array:
        """One block for query tokens hq (B, n, m, D): the one at point i attends to the real
        tokens before its own (keys k, values v (B, T, H, C) of this layer) and to itself."""
        qq, kq, vq = self._heads(hq, layer)  # (B, n, m, H, C) each
        scale = math.sqrt(qq.shape[-1])
        logits = jnp.einsum("bimhc,bthc->bimht", qq, k) / scale  # (B, n, m, H, T)
        before = np.arange(k.shape[1])[None, :] < at[:, None]  # (n, T)
        logits = jnp.where(before[None, :, None, None, :], logits.astype(jnp.float32), -1e30)
        own = (jnp.sum(qq * kq, -1) / scale).astype(jnp.float32)[..., None]  # (B, n, m, H, 1)
        weights = jax.nn.softmax(jnp.concatenate([logits, own], -1), -1).astype(hq.dtype)
        mixed = jnp.einsum("bimht,bthc->bimhc", weights[..., :-1], v) + weights[..., -1:] * vq
        hq = hq + mixed.reshape(hq.shape) @ layer["w_attn_out"] + layer["b_attn_out"]
        return self._mlp(hq, layer)  # (B, n, m, D)

    def _layers(self, body, h: jax.Array, stacked: dict):
        """The layer loop: one `lax.scan` (XLA compiles one block however deep the model;
        unrolled or a Python loop over static slices ran slower on CPU, docs/benchmarks.md)."""
        return jax.lax.scan(body, h, stacked)

    def _cast(self, name: str) -> jax.Array:
        return getattr(self, name)[...].astype(self.dtype)

    def _embed(self, toks: jax.Array, positions) -> jax.Array:
        """Tokens (..., F) at token indices `positions` -> (..., D)."""
        h = toks @ self._cast("read_in") + self._cast("read_in_bias")
        return h + self._cast("pos")[positions] if self.use_positions else h

    def _stacked(self) -> dict:
        return {name: self._cast(name) for name in (
            "ln1_scale", "ln1_bias", "w_qkv", "b_qkv", "w_attn_out", "b_attn_out",
            "ln2_scale", "ln2_bias", "w_fc", "b_fc", "w_proj", "b_proj")}

    def _read_out(self, h: jax.Array) -> jax.Array:
        """Final LayerNorm and the scalar read-out: (..., D) -> (...)."""
        out = layer_norm(h, self._cast("lnf_scale"), self._cast("lnf_bias"))
        return (out @ self._cast("read_out") + self._cast("read_out_bias"))[..., 0]

    def _forward(self, xs: jax.Array, ys: jax.Array, capture: bool, training: bool = False):
        toks = tokens.encode(xs, ys, self.encoding).astype(self.dtype)  # (B, T, F)
        h = self._embed(toks, slice(0, toks.shape[1]))  # (B, T, D)
        stacked = self._stacked()

        block = functools.partial(self._block, training=training)
        if self.remat is not None:  # prevent_cse=False: inside a scan CSE cannot undo remat
            block = jax.checkpoint(block, policy=self.remat, static_argnums=(2,),
                                   prevent_cse=False)

        def body(h, layer):
            h, attention = block(h, layer, capture)
            return h, ((h, attention) if capture else None)

        h0 = h
        h, per_layer = self._layers(body, h, stacked)
        token_preds = self._read_out(h)  # (B, T)
        preds = token_preds[:, tokens.x_positions(self.encoding, xs.shape[1])]  # (B, n)
        if not capture:
            return preds.astype(jnp.float32), None
        residuals = jnp.concatenate([h0[None], per_layer[0]], 0)  # (L+1, B, T, D)
        return preds.astype(jnp.float32), {"residuals": residuals, "attention": per_layer[1]}

    def __call__(self, xs: jax.Array, ys: jax.Array) -> jax.Array:
        """xs (B, n, d), ys (B, n) -> preds (B, n); preds[:, i] sees pairs < i and x_i."""
        return self._forward(xs, ys, capture=False)[0]

    def training_predictions(self, xs: jax.Array, ys: jax.Array, step) -> tuple:
        """The training forward (model contract, optional member): the predictions of
        `__call__` as one window, (1, B, n) with weight (1,), through the reverse-mode-only
        `project` that makes the backward pass faster on CPU."""
        preds = self._forward(xs, ys, capture=False, training=True)[0]  # (B, n)
        return preds[None], jnp.ones((1,), jnp.float32)

    def intermediates(self, xs: jax.Array, ys: jax.Array) -> dict:
        """preds (B, n), residuals (L+1, B, T, D) after the embedding and each block,
        attention (L, B, H, T, T)."""
        preds, captured = self._forward(xs, ys, capture=True)
        return {"preds": preds, **captured}

    def predict_queries(self, xs: jax.Array, ys: jax.Array, queries: jax.Array) -> jax.Array:
        """preds[b, i, q]: the prediction at point i with x_i replaced by queries[b, i, q] and
        the real pairs before i as context: (B, n, m) from queries (B, n, m, d). One pass over
        the real prompt gives each layer's keys and values; each query is then one token
        (causal attention: nothing after point i reaches it), not one forward per point."""
        n, d = xs.shape[1], xs.shape[2]
        toks = tokens.encode(xs, ys, self.encoding).astype(self.dtype)  # (B, T, F)
        at = tokens.x_positions(self.encoding, n)  # (n,) the token of each point
        m = queries.shape[2]
        q_toks = jnp.broadcast_to(toks[:, at, None, :], (toks.shape[0], n, m, toks.shape[2]))
        q_toks = q_toks.at[..., tokens.x_columns(self.encoding, d)].set(
            queries.astype(self.dtype))  # (B, n, m, F)
        h = self._embed(toks, slice(0, toks.shape[1]))  # (B, T, D)
        hq = self._embed(q_toks, at[:, None])  # (B, n, m, D)

        def body(carry, layer):
            h, hq = carry
            _, k, v = self._heads(h, layer)  # (B, T, H, C) each
            return (self._block(h, layer, False)[0], self._query_block(hq, k, v, at, layer)), None

        (_, hq), _ = jax.lax.scan(body, (h, hq), self._stacked())
        return self._read_out(hq).astype(jnp.float32)  # (B, n, m)

    def x_positions(self, n_points: int):
        return tokens.x_positions(self.encoding, n_points)

    def y_positions(self, n_points: int):
        return tokens.y_positions(self.encoding, n_points)

    # The rest of the model contract (models/contract.py).
    @property
    def n_layers(self) -> int:
        return self.depth

    @property
    def max_points(self) -> int | None:
        return self.table_points  # the learned positional table's length, in points

    def lens(self, hidden: jax.Array) -> jax.Array:
        """Final LayerNorm + read-out of any residual stream: (..., D) -> (...) float32."""
        return self._read_out(hidden.astype(self.dtype)).astype(jnp.float32)

    def n_tokens(self, n_points: int) -> int:
        return tokens.seq_len(self.encoding, n_points)
