"""The attention probe with an MLP read-out (Akyürek et al. 2022, §5): a learned softmax over
tokens 0..t of a layer pools the hidden states, then one hidden ReLU layer reads the target."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from icl_regression.probes.families import TRAINED, attention_pool, mlp_init


def attention_mlp_init(key, shape_glp, n_features, n_tokens, n_out, hidden):
    # Zero query and bias: the pooling starts as a uniform average over the visible tokens.
    return {"query": jnp.zeros((*shape_glp, n_features)),
            "token_bias": jnp.zeros((*shape_glp, n_tokens)),
            **mlp_init(key, shape_glp, n_features, n_tokens, n_out, hidden)}


def attention_mlp_apply(params, acts, positions):
    """acts (L, B, T, D) standardised -> (G, L, P, B, d)."""
    pooled = attention_pool(params, acts, positions)  # (G, L, P, B, D)
    h = jnp.einsum("glpbd,glpdh->glpbh", pooled, params["w1"]) + params["b1"][..., None, :]
    return jnp.einsum("glpbh,glphe->glpbe", jax.nn.relu(h),
                      params["w2"]) + params["b2"][..., None, :]  # (G, L, P, B, d)


TRAINED["attention_mlp"] = (attention_mlp_init, attention_mlp_apply)
