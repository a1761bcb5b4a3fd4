"""Linear self-attention, its GD construction and the comparison tools, checked against
independent float64 NumPy computations of gradient descent in context."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl_regression import load_run
from icl_regression.analysis import gd_compare
from icl_regression.config import (
    ConfigError,
    LSAConfig,
    OptimConfig,
    TaskConfig,
    TrainConfig,
    validate,
)
from icl_regression.data import tasks
from icl_regression.models import build_model
from icl_regression.models.lsa import LSA, constructed_lsa, gd_construction, lsa_forward
from icl_regression.train.loop import masked_mse, train_run

D, N = 4, 7  # prefixes k = 0..6 cover the rank-deficient k < d and the k >= d cases


def prompts(seed: int, batch: int = 5, n: int = N, d: int = D):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, n, d)), rng.normal(size=(batch, n))  # float64


def numpy_gd_plus_plus(xs, ys, etas, gammas):
    """Prediction at every position of k-step GD(++) on ½Σ_j (wᵀx_j − y_j)² over pairs < i
    from w = 0, written as the token updates of the construction: per step, every x (context
    and query) becomes (I − γ S) x with S = Σ_j x_j x_jᵀ, and every residual r_t (y_j − wᵀx_j
    for context, −wᵀx_q for the query) loses η Σ_j r_j x_jᵀ x_t. Returns −r_query."""
    batch, n, _ = xs.shape
    preds = np.zeros((batch, n))
    for b in range(batch):
        for i in range(n):
            x_ctx, r_ctx = xs[b, :i].copy(), ys[b, :i].copy()
            x_q, r_q = xs[b, i].copy(), 0.0
            for eta, gamma in zip(etas, gammas, strict=True):
                s = x_ctx.T @ x_ctx
                grad_dir = x_ctx.T @ r_ctx  # Σ_j r_j x_j
                r_ctx, r_q = r_ctx - eta * x_ctx @ grad_dir, r_q - eta * x_q @ grad_dir
                x_ctx, x_q = x_ctx - gamma * x_ctx @ s, x_q - gamma * s @ x_q
            preds[b, i] = -r_q
    return preds


def numpy_gd(xs, ys, eta, n_steps):
    """Plain k-step GD from w = 0, as weights: w ← w + η Σ_j (y_j − wᵀx_j) x_j."""
    batch, n, d = xs.shape
    preds = np.zeros((batch, n))
    for b in range(batch):
        for i in range(n):
            w = np.zeros(d)
            for _ in range(n_steps):
                w = w + eta * xs[b, :i].T @ (ys[b, :i] - xs[b, :i] @ w)
            preds[b, i] = w @ xs[b, i]
    return preds


def f32(*arrays):
    return [jnp.asarray(a, jnp.float32) for a in arrays]


def test_one_layer_construction_is_one_gd_step():
    xs, ys = prompts(0)
    eta = 0.07
    preds = np.asarray(constructed_lsa(D, eta, 1)(*f32(xs, ys)))
    # η Σ_{j<i} y_j x_jᵀ x_i with an explicit prefix mask
    mask = np.tril(np.ones((N, N)), -1)  # [i, j] = 1 for j < i
    expected = eta * np.einsum("ij,bj,bjd,bid->bi", mask, ys, xs, xs)
    np.testing.assert_allclose(preds, expected, atol=1e-5)
    assert np.all(preds[:, 0] == 0)  # no context: the zero prediction


@pytest.mark.parametrize("tie_layers", [False, True])
def test_k_layers_are_k_gd_steps(tie_layers):
    xs, ys = prompts(1)
    for n_steps in (2, 3):
        model = constructed_lsa(D, 0.05, n_steps, tie_layers=tie_layers)
        np.testing.assert_allclose(np.asarray(model(*f32(xs, ys))),
                                   numpy_gd(xs, ys, 0.05, n_steps), atol=1e-5)


def test_gd_plus_plus_construction_matches_numpy():
    xs, ys = prompts(2)
    etas, gammas = [0.05, 0.08, 0.03], [0.02, 0.01, 0.0]
    weights = gd_construction(D, etas, 3, gammas)
    preds = np.asarray(lsa_forward(weights, *f32(xs, ys), n_layer=3)[0])
    np.testing.assert_allclose(preds, numpy_gd_plus_plus(xs, ys, etas, gammas), atol=1e-5)
    # with γ = 0 the token form is the weight form of GD
    np.testing.assert_allclose(numpy_gd_plus_plus(xs, ys, [0.05] * 3, [0] * 3),
                               numpy_gd(xs, ys, 0.05, 3), atol=1e-12)


def lsa_cfg(**overrides) -> LSAConfig:
    return dataclasses.replace(LSAConfig(name="lsa", n_layer=2, n_head=2, d_model=2), **overrides)


ABLATIONS = {"use_mlp": True, "use_layernorm": True, "tie_layers": True}


@pytest.mark.parametrize("extras", [{}, ABLATIONS])
def test_causal_and_intermediates(extras):
    model = build_model(lsa_cfg(**extras), TaskConfig(d=D, n_points=N), seed=3)
    xs, ys = f32(*prompts(3))
    out = model.intermediates(xs, ys)
    np.testing.assert_allclose(out["preds"], model(xs, ys), atol=1e-6)
    assert out["residuals"].shape == (3, 5, N, D + 1)
    assert out["attention"].shape == (2, 5, 2, N, N)
    assert np.all(np.triu(np.ones((N, N))) * np.asarray(out["attention"]) == 0)  # keys j < i only
    if not extras:  # plain LSA: the prediction is minus the final query's y slot
        np.testing.assert_allclose(out["residuals"][-1, ..., D], -out["preds"], atol=1e-6)
    # changing y_i and every later point leaves the prediction at i unchanged
    i = 3
    xs2 = xs.at[:, i + 1:].set(xs[:, i + 1:] * -2.0 + 1.0)
    ys2 = ys.at[:, i:].set(ys[:, i:] + 5.0)
    before, after = np.asarray(model(xs, ys)), np.asarray(model(xs2, ys2))
    np.testing.assert_allclose(after[:, : i + 1], before[:, : i + 1], atol=1e-5)
    assert np.abs(after[:, i + 1:] - before[:, i + 1:]).max() > 1e-3  # later ones do change


def test_sensitivity_and_self_comparison():
    xs, ys = prompts(4)
    xs32, ys32 = f32(xs, ys)
    eta = 0.1
    gd = constructed_lsa(D, eta, 1)
    # the one-step GD map is linear in x_q with gradient η Σ_{j<i} y_j x_j
    sens = np.asarray(gd_compare.query_sensitivity(gd, xs32, ys32, position=-1))
    np.testing.assert_allclose(sens, eta * np.einsum("bj,bjd->bd", ys[:, :-1], xs[:, :-1]),
                               atol=1e-5)
    model = build_model(lsa_cfg(), TaskConfig(d=D, n_points=N), seed=5)
    for predictor in (model, gd):
        same = gd_compare.compare_predictors(predictor, predictor, xs32, ys32)
        assert same["pred_diff"] == 0 and same["l2"] == 0
        assert same["cosine"] == pytest.approx(1.0, abs=1e-6)
    # a GD step of another size: same direction, different length
    other = gd_compare.compare_predictors(gd, constructed_lsa(D, 3 * eta, 1), xs32, ys32)
    assert other["cosine"] == pytest.approx(1.0, abs=1e-6)
    expected_l2 = 2 * eta * np.linalg.norm(np.einsum("bj,bjd->bd", ys[:, :-1], xs[:, :-1]), axis=1)
    assert other["l2"] == pytest.approx(expected_l2.mean(), rel=1e-5)
    assert gd_compare.compare_predictors(model, gd, xs32, ys32)["cosine"] < 0.9


def test_optimal_eta_and_interpolation():
    task = TaskConfig(d=D, n_points=N)
    xs, ys, _ = tasks.sample_prompts(jax.random.key(0), task, 512)
    # one step: the prediction is η g with g = Σ y_j x_jᵀ x_q, so η* = Σ g y / Σ g²
    x64, y64 = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    g = np.einsum("bj,bjd,bd->b", y64[:, :-1], x64[:, :-1], x64[:, -1])
    eta_star = (g * y64[:, -1]).sum() / (g * g).sum()
    assert gd_compare.optimal_gd_eta(xs, ys, 1) == pytest.approx(eta_star, rel=1e-3)
    eta2 = gd_compare.optimal_gd_eta(xs, ys, 2)
    loss2 = lambda e: np.square(numpy_gd(x64, y64, e, 2)[:, -1] - y64[:, -1]).mean()
    assert loss2(eta2) <= min(loss2(0.9 * eta2), loss2(1.1 * eta2))

    trained = build_model(lsa_cfg(n_head=1, d_model=1), task, seed=6)
    rescaled = gd_compare.rescale_key_query(trained)
    np.testing.assert_allclose(rescaled(xs, ys), trained(xs, ys), rtol=1e-4, atol=1e-6)
    diag = np.diagonal(np.asarray(rescaled.w_kq[...])[..., :D, :D], axis1=-2, axis2=-1)
    np.testing.assert_allclose(diag.mean(-1), 1.0, rtol=1e-5)
    target = constructed_lsa(D, eta_star, 2)
    losses = gd_compare.interpolation_losses(trained, target, xs, ys, [0.0, 1.0])
    assert losses[0] == pytest.approx(gd_compare.loss_at(trained, xs, ys), rel=1e-4)
    assert losses[1] == pytest.approx(gd_compare.loss_at(target, xs, ys), rel=1e-4)
    assert gd_compare.weight_distance(target, target) == {"w_kq": 0.0, "w_pv": 0.0, "w_pv_y": 0.0}


def test_masked_mse_last_position_and_config_validation():
    rng = np.random.default_rng(7)
    preds, ys = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    loss, _ = masked_mse(*f32(preds, ys), 4, last_only=True)
    assert float(loss) == pytest.approx(np.square(preds[:, 3] - ys[:, 3]).mean(), rel=1e-6)
    with pytest.raises(ConfigError, match="loss_positions"):
        validate(TrainConfig(loss_positions="first"))


def test_trains_and_loads(tmp_path):
    cfg = TrainConfig(task=TaskConfig(d=3, n_points=6), model=lsa_cfg(n_layer=1, n_head=1),
                      optim=OptimConfig(lr=3e-2, warmup_steps=0, schedule="constant"),
                      steps=40, batch_size=32, log_every=20, ckpt_every=20,
                      loss_positions="last", progress=False)
    train_run(cfg, tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.step == 40 and isinstance(run.model, LSA)
    np.testing.assert_array_equal(run.x_positions, np.arange(6))
    assert run.y_positions is None
    xs, ys, _ = run.sample(jax.random.key(1), 256)
    fresh = run.untrained(seed=cfg.seed)  # the initialisation training started from
    assert gd_compare.loss_at(run.predict, xs, ys) < 0.9 * gd_compare.loss_at(fresh.predict, xs, ys)
    out = run.intermediates(xs, ys)
    np.testing.assert_allclose(out["preds"], run.predict(xs, ys), atol=1e-6)


@pytest.mark.slow
def test_trained_one_layer_lsa_matches_optimal_gd(tmp_path):
    """von Oswald et al.'s headline: one trained LSA layer reaches the loss of one GD step with
    the best η and the same sensitivity to the query."""
    from icl_regression.analysis.app import compose_preset

    cfg = dataclasses.replace(compose_preset("oswald_lsa"), steps=800, progress=False,
                              ckpt_every=800, keep_period=0, log_every=100)
    train_run(cfg, tmp_path / "run")
    run = load_run(tmp_path / "run")
    xs, ys, _ = tasks.sample_prompts(tasks.stream_key(1, "eval"), cfg.task, 4096)
    eta = gd_compare.optimal_gd_eta(xs, ys, 1)
    gd = constructed_lsa(cfg.task.d, eta, 1)
    trained_loss, gd_loss = gd_compare.loss_at(run.predict, xs, ys), gd_compare.loss_at(gd, xs, ys)
    assert trained_loss < gd_loss * 1.02
    assert gd_compare.compare_predictors(run.predict, gd, xs, ys)["cosine"] > 0.99


def test_presets_compose():
    from icl_regression.analysis.app import compose_preset

    single = compose_preset("oswald_lsa")
    assert (single.model.name, single.model.n_layer, single.loss_positions) == ("lsa", 1, "last")
    assert (single.task.d, single.task.n_points, single.task.x_dist) == (10, 11, "uniform")
    assert tasks.expected_y2(single.task) == pytest.approx(10 / 3, rel=1e-6)  # the paper's scale
    deep = compose_preset("oswald_lsa_deep", ("model.n_layer=4", "model.tie_layers=true"))
    assert (deep.model.n_layer, deep.model.tie_layers, deep.task) == (4, True, single.task)
