"""Causal linear attention (Katharopoulos et al. 2020), model `linear_attention`: the GPT's
pre-LN blocks (models/blocks.py) with softmax replaced by the kernel feature map φ(x) = elu(x)+1,

    out_i = φ(q_i)ᵀ Σ_{j<=i} φ(k_j) v_jᵀ / φ(q_i)ᵀ Σ_{j<=i} φ(k_j),

computed two ways: as a masked product (weights A_ij = φ(q_i)·φ(k_j) for j <= i, each row
normalised: what the model runs, and its attention maps) and as a recurrence over tokens
(state S_t = S_{t-1} + φ(k_t) v_tᵀ, normaliser z_t = z_{t-1} + φ(k_t): constant memory per
token, the transformer-as-RNN view). Tests check the two equal. No positional embedding: the
paired encoding's tokens carry their pair, and causality alone orders the prompt.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from icl_regression.config import LinearAttentionConfig, TaskConfig
from icl_regression.models.blocks import TransformerBlock
from icl_regression.models.registry import MODELS
from icl_regression.models.sequence import SequenceModel


def feature_map(x: jax.Array) -> jax.Array:
    """φ(x) = elu(x) + 1 > 0."""
    return jax.nn.elu(x) + 1.0


def linear_attention_weights(q: jax.Array, k: jax.Array) -> jax.Array:
    """The masked product: q, k (B, T, H, C) -> row-normalised weights (B, H, T, T)."""
    seq = q.shape[1]
    scores = jnp.einsum("bqhc,bkhc->bhqk", feature_map(q.astype(jnp.float32)),
                        feature_map(k.astype(jnp.float32)))  # (B, H, T, T), all > 0
    scores = jnp.where(jnp.tril(jnp.ones((seq, seq), bool)), scores, 0.0)
    return (scores / scores.sum(-1, keepdims=True)).astype(q.dtype)


def linear_attention_recurrent(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """The recurrence: q, k, v (B, T, H, C) -> out (B, T, H, C), one token at a time."""
    fq, fk = feature_map(q.astype(jnp.float32)), feature_map(k.astype(jnp.float32))

    def step(carry, inputs):
        state, norm = carry  # (B, H, C, Cv), (B, H, C)
        q_t, k_t, v_t = inputs  # (B, H, C) each
        state = state + jnp.einsum("bhc,bhe->bhce", k_t, v_t)
        norm = norm + k_t
        out = jnp.einsum("bhc,bhce->bhe", q_t, state) / jnp.einsum("bhc,bhc->bh", q_t, norm
                                                                  )[..., None]
        return (state, norm), out

    batch, _, heads, width = q.shape
    init = (jnp.zeros((batch, heads, width, v.shape[-1])), jnp.zeros((batch, heads, width)))
    per_token = lambda a: jnp.swapaxes(a, 0, 1)  # (T, B, H, C)
    _, outs = jax.lax.scan(step, init, (per_token(fq), per_token(fk),
                                        per_token(v.astype(jnp.float32))))
    return per_token(outs).astype(q.dtype)  # (B, T, H, C)


@MODELS.register("linear_attention")
class LinearAttention(SequenceModel):
    """`n_layer` pre-LN blocks of causal linear attention and a GELU MLP; keys:
    config.LinearAttentionConfig."""

    config_class = LinearAttentionConfig

    has_attention = True  # the normalised linear weights

    def __init__(self, model: LinearAttentionConfig, task: TaskConfig, *, rngs: nnx.Rngs):
        super().__init__(model, task, rngs=rngs)
        self.blocks = nnx.List([
            TransformerBlock(self, model.d_model, model.n_head, model.mlp_ratio, model.n_layer,
                             rngs, weights_fn=linear_attention_weights)
            for _ in range(model.n_layer)])

    def layers(self, h: jax.Array, capture: bool):
        hidden, attention = [], []
        for block in self.blocks:
            h, weights = block(h)  # (B, T, D), (B, H, T, T)
            hidden.append(h)
            attention.append(weights)
        return hidden, attention
