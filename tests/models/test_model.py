"""Model shapes, dtypes, causality and the captured intermediates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl_regression.config import GPTConfig, TaskConfig
from icl_regression.data import tokens
from icl_regression.models import build_model, count_params

TASK = TaskConfig(d=3, n_points=6)


def prompts(seed=0, batch=4, task=TASK):
    key = jax.random.key(seed)
    xs = jax.random.normal(key, (batch, task.n_points, task.d))
    ys = jax.random.normal(jax.random.fold_in(key, 1), (batch, task.n_points))
    return xs, ys


@pytest.mark.parametrize("encoding", ["paired", "interleaved"])
def test_prediction_at_i_ignores_later_points(encoding):
    model = build_model(GPTConfig(n_layer=2, d_model=16, n_head=2, encoding=encoding), TASK, 0)
    model = jax.jit(model.__call__)  # one compilation instead of many eager dispatches
    xs, ys = prompts()
    base = np.asarray(model(xs, ys))
    for i in range(TASK.n_points - 1):
        xs2 = xs.at[:, i + 1:].set(jax.random.normal(jax.random.key(9 + i), xs[:, i + 1:].shape))
        ys2 = ys.at[:, i:].add(3.0)  # y_i itself must not be visible at position i
        changed = np.asarray(model(xs2, ys2))
        np.testing.assert_allclose(changed[:, : i + 1], base[:, : i + 1], rtol=1e-5, atol=1e-6)
        assert not np.allclose(changed[:, i + 1:], base[:, i + 1:])  # later ones do change


@pytest.mark.parametrize("encoding", ["paired", "interleaved"])
def test_intermediates_shapes_and_consistency(encoding):
    cfg = GPTConfig(n_layer=3, d_model=16, n_head=4, encoding=encoding)
    model = build_model(cfg, TASK, 0)
    xs, ys = prompts()
    out = model.intermediates(xs, ys)
    seq = tokens.seq_len(encoding, TASK.n_points)
    assert out["residuals"].shape == (4, 4, seq, 16)
    assert out["attention"].shape == (3, 4, 4, seq, seq)
    np.testing.assert_allclose(out["preds"], model(xs, ys), rtol=1e-5, atol=1e-6)
    att = np.asarray(out["attention"])
    np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)  # softmax rows
    assert np.abs(np.triu(att, 1)).max() == 0  # causal


def test_bfloat16_compute_keeps_float32_outputs():
    model = build_model(GPTConfig(n_layer=1, d_model=16, dtype="bfloat16"), TASK, 0)
    xs, ys = prompts()
    preds = model(xs, ys)
    assert preds.dtype == jnp.float32 and preds.shape == (4, 6)
    ref = build_model(GPTConfig(n_layer=1, d_model=16), TASK, 0)(xs, ys)
    np.testing.assert_allclose(preds, ref, atol=0.05)


def test_init_is_a_function_of_seed_and_count_matches_formula():
    cfg = GPTConfig(n_layer=2, d_model=16, n_head=2, mlp_ratio=4)
    a, b, c = (build_model(cfg, TASK, s) for s in (0, 0, 1))
    xs, ys = prompts()
    np.testing.assert_array_equal(a(xs, ys), b(xs, ys))
    assert not np.allclose(a(xs, ys), c(xs, ys))
    width, hidden, n_in, seq = 16, 64, 2 * TASK.d + 1, TASK.n_points
    per_layer = 4 * width + (width * 3 * width + 3 * width) + (width * width + width) + (
        width * hidden + hidden) + (hidden * width + width)
    expected = n_in * width + width + seq * width + 2 * per_layer + 2 * width + width + 1
    assert count_params(a) == expected


def test_paired_tokens_hold_previous_pair_and_query():
    xs, ys = prompts(batch=2)
    toks = np.asarray(tokens.encode(xs, ys, "paired"))
    d = TASK.d
    np.testing.assert_array_equal(toks[:, 0, : d + 1], 0)
    np.testing.assert_array_equal(toks[:, 3, :d], xs[:, 2])
    np.testing.assert_array_equal(toks[:, 3, d], ys[:, 2])
    np.testing.assert_array_equal(toks[:, 3, d + 1:], xs[:, 3])
    inter = np.asarray(tokens.encode(xs, ys, "interleaved"))
    np.testing.assert_array_equal(inter[:, 4, :d], xs[:, 2])
    np.testing.assert_array_equal(inter[:, 5, d], ys[:, 2])
