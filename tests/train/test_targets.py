"""loss_target=posterior_mean: the Bayes predictor's output as the training target."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from conftest import tiny_config
from flax import nnx

from icl_regression.config import ConfigError, TaskConfig, effective_loss_target, validate
from icl_regression.data import tasks
from icl_regression.models import build_model
from icl_regression.train import loop
from icl_regression.train.mesh import DataParallel
from icl_regression.train.targets import loss_targets, posterior_mean


def numpy_posterior_mean(xs: np.ndarray, ys: np.ndarray, lam: float) -> np.ndarray:
    """float64: x_i · X⁺ y (λ = 0) or x_i · (XᵀX + λI)⁻¹ Xᵀy over the pairs before i."""
    batch, n, d = xs.shape
    out = np.zeros((batch, n))
    for b in range(batch):
        for i in range(1, n):
            x, y = xs[b, :i], ys[b, :i]
            w = (np.linalg.pinv(x) @ y if lam == 0
                 else np.linalg.solve(x.T @ x + lam * np.eye(d), x.T @ y))
            out[b, i] = xs[b, i] @ w
    return out


@pytest.mark.parametrize("noise_std", [0.0, 0.5])
def test_posterior_mean_matches_numpy_including_rank_deficient_prefixes(noise_std):
    task = TaskConfig(d=5, n_points=12, noise_std=noise_std)
    xs, ys, _ = tasks.train_batch(0, 3, task, 6)  # (6, 12, 5), (6, 12)
    got = np.asarray(posterior_mean(xs, ys, task))
    lam = noise_std**2 * task.d / task.w_scale**2
    want = numpy_posterior_mean(np.asarray(xs, np.float64), np.asarray(ys, np.float64), lam)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    if noise_std == 0:  # noiseless, k >= d: the posterior is a point mass, the target is y
        np.testing.assert_allclose(got[:, task.d:], np.asarray(ys)[:, task.d:], atol=1e-4)
        assert np.abs(got[:, 1:task.d] - np.asarray(ys)[:, 1:task.d]).max() > 0.1


def test_training_loss_is_the_error_to_the_posterior_mean():
    cfg = tiny_config(task=TaskConfig(d=3, n_points=6), loss_target="posterior_mean")
    model = build_model(cfg.model, cfg.task, cfg.seed)
    xs, ys, _ = tasks.train_batch(cfg.seed, 0, cfg.task, cfg.batch_size)
    preds = np.asarray(model(xs, ys), np.float64)  # the step-0 parameters' predictions
    targets = numpy_posterior_mean(np.asarray(xs, np.float64), np.asarray(ys, np.float64), 0.0)
    losses = {}
    for target in ("labels", "posterior_mean"):
        run_cfg = dataclasses.replace(cfg, loss_target=target)
        graphdef, params = nnx.split(build_model(run_cfg.model, run_cfg.task, run_cfg.seed))
        tx, schedule = loop.make_optimizer(run_cfg)
        update = loop.make_update(run_cfg, graphdef, tx, schedule,
                                  DataParallel.create(devices=jax.devices()[:1]))
        _, _, metrics = update(params, tx.init(params), 0, 1, cfg.task.n_points)
        losses[target] = (float(metrics["loss"][0]), float(metrics["loss_norm"][0]))
    want = np.mean((preds - targets) ** 2)
    np.testing.assert_allclose(losses["posterior_mean"][0], want, rtol=1e-4)
    # Normalised by the zero predictor's error on the labels, whatever the target.
    np.testing.assert_allclose(losses["posterior_mean"][1],
                               want / np.mean(np.asarray(ys, np.float64) ** 2), rtol=1e-4)
    np.testing.assert_allclose(losses["labels"][0], np.mean((preds - np.asarray(ys)) ** 2),
                               rtol=1e-4)
    assert losses["labels"][0] > losses["posterior_mean"][0] + 0.05


@pytest.mark.parametrize("task,key", [
    (TaskConfig(family="quadratic"), "task.family"),
    (TaskConfig(w_prior="sparse", sparsity=2), "task.w_prior"),
    (TaskConfig(w_mean=1.0), "task.w_mean"),
    (TaskConfig(pool_size=4), "task.pool_size"),
    (TaskConfig(corrupt_fraction=0.2), "task.corrupt_fraction"),
    (TaskConfig(w_scale=0.0), "task.w_scale"),
])
def test_posterior_mean_target_refuses_tasks_without_a_closed_form(task, key):
    with pytest.raises(ConfigError, match=rf"^{key}=.*loss_target=posterior_mean"):
        validate(tiny_config(task=task, loss_target="posterior_mean"))
    validate(tiny_config(task=task))  # the same task with the labels as targets is fine
    auto = tiny_config(task=task, loss_target="auto")
    validate(auto)  # auto falls back to the labels, and the loss then compares with ys
    assert effective_loss_target(auto) == "labels"
    xs = np.ones((2, 3, auto.task.d), np.float32)  # (B, n, d)
    ys = np.arange(6.0, dtype=np.float32).reshape(2, 3)  # (B, n)
    assert np.array_equal(np.asarray(loss_targets(auto, xs, ys)), ys)


@pytest.mark.parametrize("noise_std", [0.0, 0.5])
def test_auto_target_is_the_posterior_mean_where_it_is_closed_form(noise_std):
    cfg = tiny_config(task=TaskConfig(d=4, n_points=7, noise_std=noise_std), loss_target="auto")
    assert effective_loss_target(cfg) == "posterior_mean"
    xs, ys, _ = tasks.train_batch(0, 4, cfg.task, 16)  # (16, 7, 4), (16, 7)
    lam = noise_std**2 * cfg.task.d / cfg.task.w_scale**2
    want = numpy_posterior_mean(np.asarray(xs, np.float64), np.asarray(ys, np.float64), lam)
    np.testing.assert_allclose(np.asarray(loss_targets(cfg, xs, ys)), want, atol=2e-4)


def test_unknown_loss_target_is_refused():
    with pytest.raises(ConfigError, match="loss_target"):
        validate(tiny_config(loss_target="bayes"))
