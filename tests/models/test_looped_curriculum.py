"""The looped model's loop curriculum: loops per step, the window of loops in the loss, the
gradient cut before the window, and its config checks."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import tiny_config
from flax import nnx

from icl_regression.config import ConfigError, LoopedConfig, TaskConfig, validate
from icl_regression.models import build_model
from icl_regression.train import loop
from icl_regression.train.mesh import DataParallel

TASK = TaskConfig(d=2, n_points=4)
RNG = np.random.default_rng(1)
XS = RNG.standard_normal((3, 4, 2)).astype(np.float32)
YS = RNG.standard_normal((3, 4)).astype(np.float32)


def looped(**keys):
    return build_model(LoopedConfig(n_layer=1, d_model=8, **keys), TASK, 0)


def with_n_loops(model, n: int):
    copy = nnx.clone(model)
    copy.loops = n
    return copy


@pytest.mark.parametrize("step, loops", [(0, 1), (5, 2), (17, 4), (1000, 5)])
def test_the_window_holds_the_last_loops_of_the_scheduled_count(step, loops):
    model = looped(n_loops=5, loops_start=1, loops_every=5, loop_window=3)
    assert int(model.loops_at(step)) == loops
    preds, weights = model.training_predictions(XS, YS, step)  # (3, B, n), (3,)
    ran = min(loops, 3)
    np.testing.assert_array_equal(np.asarray(weights), [0.0] * (3 - ran) + [1.0] * ran)
    for slot in range(3 - ran, 3):  # slot s holds the prediction after loops − 3 + s + 1 loops
        expected = with_n_loops(model, loops - 3 + slot + 1)(XS, YS)
        np.testing.assert_allclose(np.asarray(preds[slot]), np.asarray(expected), atol=1e-5)


def test_no_gradient_reaches_the_loops_before_the_window():
    """Window 1 after 3 loops: the gradient is that of one loop applied to the hidden state of
    two loops held constant (taken from the contract's intermediates, not the curriculum)."""
    model = looped(n_loops=3, loops_start=3, loop_window=1)
    graphdef, params = nnx.split(model)
    held = jax.lax.stop_gradient(with_n_loops(model, 2).intermediates(XS, YS)["residuals"][-1])

    def windowed(p):
        return jnp.mean(nnx.merge(graphdef, p).training_predictions(XS, YS, 0)[0][-1] ** 2)

    def reference(p):
        m = nnx.merge(graphdef, p)
        from icl_regression.data import tokens

        e = m.embed(tokens.encode(XS, YS, m.encoding))
        h = m.loop(m.block, held, e)[0]
        return jnp.mean(m.lens(h[:, m.x_positions(4)]) ** 2)

    got, want = jax.grad(windowed)(params), jax.grad(reference)(params)
    full = jax.grad(lambda p: jnp.mean(nnx.merge(graphdef, p)(XS, YS) ** 2))(params)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-7)
    # ... and full backpropagation through all three loops differs from it.
    assert not all(np.allclose(a, b, atol=1e-6)
                   for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(full), strict=True))


def test_the_train_step_with_a_curriculum_lowers_the_windowed_loss():
    model_cfg = LoopedConfig(n_layer=1, d_model=8, n_loops=3, loops_start=1, loops_every=2,
                             loop_window=2)
    cfg = tiny_config(model=model_cfg, task=TASK, steps=8, log_every=8, ckpt_every=8)
    model = build_model(cfg.model, cfg.task, 0)
    graphdef, params = nnx.split(model)
    tx, schedule = loop.make_optimizer(cfg)
    parallel = DataParallel.create(cfg.mesh, batch_size=cfg.batch_size)
    update = loop.make_update(cfg, graphdef, tx, schedule, parallel)
    params, _, metrics = update(params, tx.init(params), 0, 8, TASK.n_points)
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    assert optax.global_norm(jax.tree.map(jnp.subtract, params, nnx.split(model)[1])) > 0


@pytest.mark.parametrize("keys, bad", [({"loops_start": 9}, "model.loops_start"),
                                       ({"loop_window": 9}, "model.loop_window"),
                                       ({"loops_every": 0}, "model.loops_every")])
def test_curriculum_keys_out_of_range_are_refused(keys, bad):
    cfg = tiny_config(model=LoopedConfig(n_loops=8, **keys))
    with pytest.raises(ConfigError, match=bad):
        validate(cfg)


def test_a_looped_model_without_curriculum_trains_on_its_last_loop():
    model = looped(n_loops=2)
    preds, weights = model.training_predictions(XS, YS, 123)
    np.testing.assert_array_equal(np.asarray(weights), [1.0])
    np.testing.assert_allclose(np.asarray(preds[0]), np.asarray(model(XS, YS)), atol=0)
    assert dataclasses.replace(LoopedConfig(), n_loops=2).loops_start == 0
