"""Engine choices that must not change the math: unrolled vs scanned layer loop (loss, grads)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl_regression.config import ModelConfig, TaskConfig
from icl_regression.models import build_model

TASK = TaskConfig(d=3, n_points=6)


def loss_and_grads(model, xs, ys):
    graphdef, params = nnx.split(model)

    def loss(p):
        return jnp.mean(jnp.square(nnx.merge(graphdef, p)(xs, ys) - ys))

    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.mark.parametrize("encoding", ["paired", "interleaved"])
def test_unrolled_layers_match_the_scanned_loop(encoding):
    cfg = ModelConfig(n_layer=3, d_model=16, n_head=2, encoding=encoding)
    key = jax.random.key(0)
    xs = jax.random.normal(key, (4, TASK.n_points, TASK.d))
    ys = jax.random.normal(jax.random.fold_in(key, 1), (4, TASK.n_points))
    results = {}
    for unroll in (1, cfg.n_layer):
        model = build_model(cfg, TASK, 0)
        model.scan_unroll = unroll
        results[unroll] = loss_and_grads(model, xs, ys)
    (loss_s, grads_s), (loss_u, grads_u) = results[1], results[cfg.n_layer]
    np.testing.assert_allclose(loss_u, loss_s, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads_u), jax.tree.leaves(grads_s), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
