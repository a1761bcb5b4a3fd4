"""Engine choices that must not change the math: what each block keeps for the backward pass,
the layer loop's form, and the block's layout (heads major, `project` for the attention output)
against the plain token-major block written with autodiff alone.

One `lax.scan` with the default remat (matmul outputs saved), no remat, full remat, or the scan
unrolled (the form benchmarks/train_throughput.py's `UnrolledGPT` gives XLA's cost analysis):
same loss, grads and captured intermediates."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl_regression.config import GPTConfig, TaskConfig
from icl_regression.models import build_model
from icl_regression.models.gpt import GPT, REMAT_POLICIES
from icl_regression.models.layers import layer_norm, project

TASK = TaskConfig(d=3, n_points=6)


class UnrolledGPT(GPT):
    def _layers(self, body, h, stacked):
        return jax.lax.scan(body, h, stacked, unroll=stacked["w_qkv"].shape[0])


class TokenMajorGPT(GPT):
    """The block as first written: q, k, v (B, T, H, C) split from one QKV matmul, einsums
    over the head axis, a plain `@` for every projection; gradients by autodiff alone."""

    def _block(self, h, layer, with_attention, training=False):
        batch, seq, width = h.shape
        a = layer_norm(h, layer["ln1_scale"], layer["ln1_bias"])
        qkv = (a @ layer["w_qkv"] + layer["b_qkv"]).reshape(batch, seq, 3 * self.n_head, -1)
        q, k, v = jnp.split(qkv, 3, axis=2)  # (B, T, H, C) each
        logits = jnp.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(q.shape[-1])
        logits = jnp.where(jnp.tril(jnp.ones((seq, seq), bool)), logits, -1e30)
        weights = jax.nn.softmax(logits, axis=-1)  # (B, H, T, T)
        mixed = jnp.einsum("bhqk,bkhc->bqhc", weights, v).reshape(batch, seq, width)
        h = h + mixed @ layer["w_attn_out"] + layer["b_attn_out"]
        return self._mlp(h, layer), (weights if with_attention else None)


VARIANTS = {"token-major block": {"__class__": TokenMajorGPT},
            "unrolled scan": {"__class__": UnrolledGPT},
            "remat none": {"remat": REMAT_POLICIES["none"]},
            "remat full": {"remat": REMAT_POLICIES["full"]}}


def loss_and_grads(model, xs, ys):
    graphdef, params = nnx.split(model)

    def loss(p):  # through the training forward, as the train loop does
        preds, weights = nnx.merge(graphdef, p).training_predictions(xs, ys, 0)  # (1, B, n)
        assert preds.shape == (1,) + ys.shape and weights.shape == (1,)
        return jnp.mean(jnp.square(preds[0] - ys))

    return jax.jit(jax.value_and_grad(loss))(params)


def model_with(encoding: str, **attributes):
    model = build_model(GPTConfig(n_layer=3, d_model=16, n_head=2, encoding=encoding), TASK, 0)
    for name, value in attributes.items():
        setattr(model, name, value)
    return model


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("encoding", ["paired", "interleaved"])
def test_engine_variants_match_the_default(encoding, variant):
    key = jax.random.key(0)
    xs = jax.random.normal(key, (4, TASK.n_points, TASK.d))
    ys = jax.random.normal(jax.random.fold_in(key, 1), (4, TASK.n_points))
    default, other = model_with(encoding), model_with(encoding, **VARIANTS[variant])
    assert default.remat is REMAT_POLICIES["dots"]  # the default
    (loss_s, grads_s), (loss_o, grads_o) = (loss_and_grads(m, xs, ys) for m in (default, other))
    np.testing.assert_allclose(loss_o, loss_s, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads_o), jax.tree.leaves(grads_s), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    ref, out = default.intermediates(xs, ys), other.intermediates(xs, ys)
    for name in ("preds", "residuals", "attention"):
        np.testing.assert_allclose(out[name], ref[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shape", [(7, 4, 3), (2, 5, 6, 3)])
def test_project_matches_numpy_in_float64(shape):
    """`project` is x @ w with the gradients of x @ w: checked against NumPy in float64."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)  # (..., D_in)
    w = rng.standard_normal((shape[-1], 5)).astype(np.float32)  # (D_in, D_out)
    grad = rng.standard_normal(shape[:-1] + (5,)).astype(np.float32)  # (..., D_out)
    out, vjp = jax.vjp(jax.jit(project), jnp.asarray(x), jnp.asarray(w))
    grad_x, grad_w = vjp(jnp.asarray(grad))
    x64, w64, g64 = (a.astype(np.float64) for a in (x, w, grad))
    np.testing.assert_allclose(out, x64 @ w64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_x, g64 @ w64.T, rtol=1e-5, atol=1e-5)
    flat_x, flat_g = x64.reshape(-1, shape[-1]), g64.reshape(-1, 5)
    np.testing.assert_allclose(grad_w, flat_x.T @ flat_g, rtol=1e-5, atol=1e-5)
