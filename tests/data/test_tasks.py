"""Prompt samplers match their specification (statistical tolerances)."""

import dataclasses

import jax
import numpy as np
import pytest

from icl_regression.config import TaskConfig
from icl_regression.data import tasks

N = 40_000


def draw(task: TaskConfig, seed=0, batch=N):
    xs, ys, ws = tasks.sample_prompts(jax.random.key(seed), task, batch, seed=seed)
    return np.asarray(xs, np.float64), np.asarray(ys, np.float64), np.asarray(ws, np.float64)


def test_shapes_dtypes_and_labels():
    task = TaskConfig(d=4, n_points=7, noise_std=0.0)
    xs, ys, ws = tasks.sample_prompts(jax.random.key(0), task, 8)
    assert xs.shape == (8, 7, 4) and ys.shape == (8, 7) and ws.shape == (8, 4)
    assert xs.dtype == ys.dtype == ws.dtype == np.float32
    np.testing.assert_allclose(ys, np.einsum("bnd,bd->bn", xs, ws), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("x_dist", ["gaussian", "skewed", "uniform"])
def test_x_covariance_matches_spec(x_dist):
    d = 4
    task = TaskConfig(d=d, n_points=2, x_dist=x_dist, x_uniform_half_width=2.0)
    xs = draw(task, batch=N)[0].reshape(-1, d)
    if x_dist == "gaussian":
        expected = np.eye(d)
    elif x_dist == "skewed":
        eigs = 1.0 / np.arange(1, d + 1)
        expected = np.diag(eigs * d / eigs.sum())
    else:
        expected = np.eye(d) * 2.0**2 / 3.0  # Var U(-a, a) = a²/3
        assert np.abs(xs).max() <= 2.0
    np.testing.assert_allclose(xs.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(np.cov(xs.T), expected, atol=0.04)


def test_w_prior_mean_and_scale():
    d, mean, scale = 5, 2.0, 0.5
    task = TaskConfig(d=d, n_points=1, w_mean=mean, w_scale=scale)
    ws = draw(task)[2]
    np.testing.assert_allclose(ws.mean(0), mean / np.sqrt(d), atol=0.02)
    np.testing.assert_allclose(np.cov(ws.T), np.eye(d) * scale**2 / d, atol=0.01)


def test_sparse_w_has_exactly_s_nonzeros_and_uniform_support():
    task = TaskConfig(d=6, n_points=1, w_prior="sparse", sparsity=2, w_scale=1.0)
    ws = draw(task)[2]
    assert ((ws != 0).sum(1) == 2).all()
    np.testing.assert_allclose((ws != 0).mean(0), 2 / 6, atol=0.01)
    np.testing.assert_allclose((ws**2).sum(1).mean(), 1.0, atol=0.03)


def test_label_noise_variance():
    task = TaskConfig(d=3, n_points=4, noise_std=0.3)
    xs, ys, ws = draw(task)
    residual = ys - np.einsum("bnd,bd->bn", xs, ws)
    np.testing.assert_allclose(residual.std(), 0.3, rtol=0.02)
    np.testing.assert_allclose((ys**2).mean(), tasks.expected_y2(task), rtol=0.03)


def test_task_pool_has_m_distinct_ws_fixed_across_steps():
    task = TaskConfig(d=4, n_points=3, pool_size=8)
    pool = np.asarray(tasks.task_pool(0, task))
    assert len(np.unique(pool.round(6), axis=0)) == 8
    seen = set()
    for step in range(3):
        ws = np.asarray(tasks.train_batch(0, step, task, 256)[2])
        rows = {tuple(w) for w in ws.round(6)}
        assert rows <= {tuple(w) for w in pool.round(6)}
        seen |= rows
    assert len(seen) == 8  # 768 draws from 8 tasks hit every one
    other = np.asarray(tasks.task_pool(1, task))
    assert not np.allclose(pool, other)  # the pool belongs to the run's seed


def test_fixed_prior_uses_one_w():
    task = TaskConfig(d=3, n_points=2, w_prior="fixed")
    ws = np.asarray(tasks.train_batch(0, 5, task, 10)[2])
    np.testing.assert_array_equal(ws, np.broadcast_to(ws[0], ws.shape))


def test_batches_are_a_pure_function_of_seed_and_step():
    task = TaskConfig(d=3, n_points=4)
    a = tasks.train_batch(0, 7, task, 4)
    b = tasks.train_batch(0, 7, task, 4)
    c = tasks.train_batch(0, 8, task, 4)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], c[0])


def test_curriculum_zeroes_inactive_dims():
    task = TaskConfig(d=5, n_points=3)
    xs = np.asarray(tasks.train_batch(0, 0, task, 6, active_dims=2)[0])
    assert (xs[..., 2:] == 0).all() and (xs[..., :2] != 0).all()


def test_expected_y2_for_defaults_is_one():
    assert tasks.expected_y2(TaskConfig(d=7)) == pytest.approx(1.0)
    noisy = dataclasses.replace(TaskConfig(d=4), noise_std=0.5)
    assert tasks.bayes_ridge_lambda(noisy) == pytest.approx(0.25 * 4)
