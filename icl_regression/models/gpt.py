"""Decoder-only softmax transformer (GPT-2 style) that reads a regression prompt.

Pre-LayerNorm blocks, learned absolute positions, causal softmax attention, GELU MLP, a linear
read-in from tokens and a linear read-out to one scalar per token.

The L blocks are stored as stacked parameters (leading axis L) and applied with `lax.scan`, so
XLA compiles one block however deep the model is (a 12-layer model compiles as fast as a
1-layer one) and the per-layer residual stream and attention weights fall out of the scan as
stacked outputs — the same forward serves training, probes and figures.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from icl_regression.config import ModelConfig, TaskConfig
from icl_regression.data import tokens
from icl_regression.models.layers import DTYPES, layer_norm
from icl_regression.models.registry import MODELS

# model.remat -> the checkpoint policy of each block (None: save every residual).
REMAT_POLICIES = {"none": None, "dots": jax.checkpoint_policies.dots_saveable,
                  "full": jax.checkpoint_policies.nothing_saveable}


@MODELS.register("gpt")
class GPT(nnx.Module):
    """`model(xs, ys) -> preds (B, n)`; `model.intermediates(xs, ys)` adds hidden states."""

    def __init__(self, model: ModelConfig, task: TaskConfig, *, rngs: nnx.Rngs):
        self.encoding = model.encoding
        self.n_head = model.n_head
        self.use_positions = model.positions == "learned"
        self.dtype = DTYPES[model.dtype]
        # Layers per iteration of the layer loop. 1 compiles fastest and, measured on CPU, runs
        # as fast as unrolling; benchmarks set n_layer so that XLA's cost analysis (which
        # counts a loop body once) sees every layer.
        self.scan_unroll = 1
        # "scan" or "python" (a Python loop over static layer slices: no per-layer dynamic
        # slices of the stacked weights and no stacked activation buffers; compiles L blocks).
        self.layer_loop = "scan"
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

    def _block(self, h: jax.Array, layer: dict, with_attention: bool):
        """One pre-LN block. h (B, T, D) -> (B, T, D), attention (B, H, T, T) or None."""
        batch, seq, width = h.shape
        head_dim = width // self.n_head
        a = layer_norm(h, layer["ln1_scale"], layer["ln1_bias"])
        qkv = a @ layer["w_qkv"] + layer["b_qkv"]  # (B, T, 3D)
        q, k, v = jnp.split(qkv.reshape(batch, seq, 3 * self.n_head, head_dim), 3, axis=2)
        logits = jnp.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(head_dim)  # (B, H, T, T)
        causal = jnp.tril(jnp.ones((seq, seq), bool))
        logits = jnp.where(causal, logits.astype(jnp.float32), -1e30)
        weights = jax.nn.softmax(logits, axis=-1).astype(h.dtype)  # (B, H, T, T)
        mixed = jnp.einsum("bhqk,bkhc->bqhc", weights, v).reshape(batch, seq, width)
        h = h + mixed @ layer["w_attn_out"] + layer["b_attn_out"]  # (B, T, D)
        m = layer_norm(h, layer["ln2_scale"], layer["ln2_bias"])
        m = jax.nn.gelu(m @ layer["w_fc"] + layer["b_fc"])  # (B, T, 4D)
        h = h + m @ layer["w_proj"] + layer["b_proj"]  # (B, T, D)
        return h, (weights if with_attention else None)

    def _forward(self, xs: jax.Array, ys: jax.Array, capture: bool):
        cast = lambda p: p[...].astype(self.dtype)
        toks = tokens.encode(xs, ys, self.encoding).astype(self.dtype)  # (B, T, F)
        seq = toks.shape[1]
        h = toks @ cast(self.read_in) + cast(self.read_in_bias)  # (B, T, D)
        if self.use_positions:
            h = h + cast(self.pos)[:seq]
        stacked = {name: cast(getattr(self, name)) for name in (
            "ln1_scale", "ln1_bias", "w_qkv", "b_qkv", "w_attn_out", "b_attn_out",
            "ln2_scale", "ln2_bias", "w_fc", "b_fc", "w_proj", "b_proj")}

        block = self._block
        if self.remat is not None:  # prevent_cse=False: inside a scan CSE cannot undo remat
            block = jax.checkpoint(block, policy=self.remat, static_argnums=(2,),
                                   prevent_cse=False)

        def body(h, layer):
            h, attention = block(h, layer, capture)
            return h, ((h, attention) if capture else None)

        h0 = h
        if self.layer_loop == "python":
            outs = []
            for i in range(stacked["w_qkv"].shape[0]):
                h, out = body(h, {name: w[i] for name, w in stacked.items()})
                outs.append(out)
            per_layer = jax.tree.map(lambda *xs: jnp.stack(xs), *outs) if capture else None
        else:
            h, per_layer = jax.lax.scan(body, h, stacked, unroll=self.scan_unroll)
        out = layer_norm(h, cast(self.lnf_scale), cast(self.lnf_bias))
        token_preds = (out @ cast(self.read_out) + cast(self.read_out_bias))[..., 0]  # (B, T)
        preds = token_preds[:, tokens.x_positions(self.encoding, xs.shape[1])]  # (B, n)
        if not capture:
            return preds.astype(jnp.float32), None
        residuals = jnp.concatenate([h0[None], per_layer[0]], 0)  # (L+1, B, T, D)
        return preds.astype(jnp.float32), {"residuals": residuals, "attention": per_layer[1]}

    def __call__(self, xs: jax.Array, ys: jax.Array) -> jax.Array:
        """xs (B, n, d), ys (B, n) -> preds (B, n); preds[:, i] sees pairs < i and x_i."""
        return self._forward(xs, ys, capture=False)[0]

    def intermediates(self, xs: jax.Array, ys: jax.Array) -> dict:
        """preds (B, n), residuals (L+1, B, T, D) after the embedding and each block,
        attention (L, B, H, T, T)."""
        preds, captured = self._forward(xs, ys, capture=True)
        return {"preds": preds, **captured}

    def x_positions(self, n_points: int):
        return tokens.x_positions(self.encoding, n_points)

    def y_positions(self, n_points: int):
        return tokens.y_positions(self.encoding, n_points)
