"""Engine choices that must not change the math: what each block keeps for the backward pass,
and the layer loop's form.

One `lax.scan` with the default remat (matmul outputs saved), no remat, full remat, or the scan
unrolled (the form benchmarks/train_throughput.py's `UnrolledGPT` gives XLA's cost analysis):
same loss, grads and captured intermediates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl_regression.config import GPTConfig, TaskConfig
from icl_regression.models import build_model
from icl_regression.models.gpt import GPT, REMAT_POLICIES

TASK = TaskConfig(d=3, n_points=6)


class UnrolledGPT(GPT):
    def _layers(self, body, h, stacked):
        return jax.lax.scan(body, h, stacked, unroll=stacked["w_qkv"].shape[0])


VARIANTS = {"unrolled scan": {"__class__": UnrolledGPT},
            "remat none": {"remat": REMAT_POLICIES["none"]},
            "remat full": {"remat": REMAT_POLICIES["full"]}}


def loss_and_grads(model, xs, ys):
    graphdef, params = nnx.split(model)

    def loss(p):
        return jnp.mean(jnp.square(nnx.merge(graphdef, p)(xs, ys) - ys))

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
