"""The sequence models' layers against plain float64 NumPy: the S6 selective scan against its
sequential recurrence, the depthwise causal convolution, linear attention as a masked product
and as a recurrence (and both against the formula), Hyena's FFT convolution against a direct
causal convolution, the LSTM and GRU cells, and the looped model's loop count."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from conftest import tiny_config
from flax import nnx

from icl_regression.config import LoopedConfig, TaskConfig
from icl_regression.models import build_model
from icl_regression.models.blocks import causal_conv
from icl_regression.models.hyena import fft_causal_conv
from icl_regression.models.linear_attention import (
    linear_attention_recurrent,
    linear_attention_weights,
)
from icl_regression.models.looped import with_loops
from icl_regression.models.mamba import selective_scan
from icl_regression.models.recurrent import gru_scan, lstm_scan
from icl_regression.run import Run

RNG = np.random.default_rng(0)


def normal(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (scale * RNG.standard_normal(shape)).astype(np.float32)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def test_selective_scan_equals_the_sequential_recurrence():
    batch, seq, inner, state = 2, 7, 3, 4
    x, delta = normal(batch, seq, inner), np.abs(normal(batch, seq, inner, scale=0.5))
    a = -np.abs(normal(inner, state)) - 0.1
    b, c, d = normal(batch, seq, state), normal(batch, seq, state), normal(inner)
    s = np.zeros((batch, inner, state))
    expected = np.zeros((batch, seq, inner))
    for t in range(seq):  # s_t = exp(Δ_t a) s_{t-1} + Δ_t x_t b_t;  y_t = s_t c_t + d x_t
        dt = delta[:, t].astype(np.float64)[..., None]  # (B, E, 1)
        s = np.exp(dt * a) * s + dt * x[:, t, :, None] * b[:, t, None, :]
        expected[:, t] = (s * c[:, t, None, :]).sum(-1) + d * x[:, t]
    got = np.asarray(selective_scan(x, delta, a, b, c, d))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_causal_conv_is_the_direct_sum():
    x, kernel = normal(2, 6, 3), normal(4, 3)
    expected = np.zeros((2, 6, 3))
    for t in range(6):
        for k in range(4):
            s = t - 3 + k
            if s >= 0:
                expected[:, t] += kernel[k].astype(np.float64) * x[:, s]
    np.testing.assert_allclose(np.asarray(causal_conv(x, kernel)), expected, atol=1e-5)


def test_linear_attention_masked_product_and_recurrence_agree_with_the_formula():
    q, k, v = normal(2, 6, 2, 3), normal(2, 6, 2, 3), normal(2, 6, 2, 4)
    phi = lambda a: np.where(a > 0, a + 1.0, np.exp(a)).astype(np.float64)  # elu + 1
    expected = np.zeros((2, 6, 2, 4))
    for i in range(6):
        scores = np.einsum("bhc,bjhc->bhj", phi(q[:, i]), phi(k[:, :i + 1]))  # (B, H, i+1)
        expected[:, i] = np.einsum("bhj,bjhe->bhe", scores, v[:, :i + 1]) / scores.sum(-1)[
            ..., None]
    weights = np.asarray(linear_attention_weights(q, k))  # (B, H, T, T)
    masked = np.einsum("bhqk,bkhe->bqhe", weights, v)
    recurrent = np.asarray(linear_attention_recurrent(q, k, v))
    np.testing.assert_allclose(masked, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(recurrent, expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.triu(weights, 1) == 0)  # no key after the query


def test_hyena_fft_convolution_is_the_direct_causal_convolution():
    kernel, u = normal(9, 3), normal(2, 9, 3)
    expected = np.zeros((2, 9, 3))
    for t in range(9):
        for s in range(t + 1):
            expected[:, t] += kernel[t - s].astype(np.float64) * u[:, s]
    np.testing.assert_allclose(np.asarray(fft_causal_conv(kernel, u)), expected, atol=1e-4)


def test_lstm_and_gru_scans_follow_their_cell_equations():
    batch, seq, width = 2, 5, 3
    u = normal(batch, seq, width)
    w_in4, w_rec4, b4 = normal(width, 4 * width), normal(width, 4 * width), normal(4 * width)
    w_in3, w_rec3, b3, b_rec = (normal(width, 3 * width), normal(width, 3 * width),
                                normal(3 * width), normal(width))
    h, c = np.zeros((batch, width)), np.zeros((batch, width))
    g_h = np.zeros((batch, width))
    lstm_expected, gru_expected = [], []
    for t in range(seq):
        i, f, g, o = np.split(u[:, t] @ w_in4 + b4 + h @ w_rec4, 4, axis=-1)
        c = sigmoid(f + 1) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        lstm_expected.append(h)
        x_part, h_part = u[:, t] @ w_in3 + b3, g_h @ w_rec3
        r = sigmoid(x_part[:, :width] + h_part[:, :width])
        z = sigmoid(x_part[:, width:2 * width] + h_part[:, width:2 * width])
        n = np.tanh(x_part[:, 2 * width:] + r * (h_part[:, 2 * width:] + b_rec))
        g_h = (1 - z) * n + z * g_h
        gru_expected.append(g_h)
    np.testing.assert_allclose(np.asarray(lstm_scan(u, w_in4, w_rec4, b4)),
                               np.stack(lstm_expected, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gru_scan(u, w_in3, w_rec3, b3, b_rec)),
                               np.stack(gru_expected, 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("more", [3, 5])
def test_looped_model_runs_more_loops_with_the_same_parameters(more, tmp_path):
    task = TaskConfig(d=2, n_points=4)
    cfg = tiny_config(model=LoopedConfig(n_layer=1, d_model=8, n_loops=2), task=task)
    run = Run(tmp_path, cfg, build_model(cfg.model, task, 0), step=0)
    longer = with_loops(run, more)
    rebuilt = build_model(dataclasses.replace(cfg.model, n_loops=more), task, 0)
    xs, ys = normal(2, 4, 2), normal(2, 4)
    assert longer.n_layers == more and longer.config.model.n_loops == more
    np.testing.assert_allclose(np.asarray(longer.predict(xs, ys)),
                               np.asarray(rebuilt(xs, ys)), atol=1e-6)
    assert not np.allclose(np.asarray(longer.predict(xs, ys)), np.asarray(run.predict(xs, ys)))
    shapes = lambda model: [a.shape for a in jax.tree.leaves(nnx.state(model, nnx.Param))]
    assert shapes(longer.model) == shapes(run.model)  # loops add no parameters
