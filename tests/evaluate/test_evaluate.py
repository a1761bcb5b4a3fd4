"""Evaluation: metric identities, OOD settings, eval.json schema, determinism, the CLI config."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest
from conftest import compose, tiny_config

from icl_regression import baselines, load_run
from icl_regression.baselines.linear import RidgeGridKnobs
from icl_regression.config import GPTConfig, TaskConfig
from icl_regression.data import shifts
from icl_regression.evaluate.app import _eval_config, register_eval_schema, run_from_config
from icl_regression.evaluate.eval_json import format_table, validate_eval_json, write_eval_json
from icl_regression.evaluate.evaluation import (
    EvalConfig,
    evaluate_predictors,
    evaluate_run,
    metrics,
)
from icl_regression.train.loop import train_run

TASK = TaskConfig(d=3, n_points=8, noise_std=0.3)
SMALL = EvalConfig(n_prompts=300, implicit_prompts=64, progress=False,
                   ridge_grid={"lams": (0.5,)})
NAMES = {"zero", "averaging", "ols", "ridge(lam=bayes)", "ridge(lam=0.5)", "gd(steps=1)",
         "knn(k=3)"}


def test_ols_against_itself_spd_ilwd_zero_r2_and_cosine_one():
    """The 'model' is ols itself: SPD 0, ILWD(ols) 0, implicit R² 1, sensitivity cosine 1;
    one-step GD is a different algorithm, so its ILWD is clearly not 0."""
    ols = baselines.get_baseline("ols")
    data = evaluate_predictors(TASK, 0, dataclasses.replace(SMALL, settings=("train",)), ols)
    train = data["settings"]["train"]
    assert np.max(train["spd"]["ols"]) == 0.0
    assert np.max(train["ilwd"]["ols"]) < 1e-6
    assert np.min(train["ilwd_r2"]) > 1 - 1e-5
    assert np.allclose(train["sensitivity_cos"]["ols"][1:], 1.0, atol=1e-5)
    assert train["sensitivity_cos"]["ols"][0] is None  # k = 0: the weight is 0
    assert train["ilwd"]["gd(steps=1)"][TASK.d] > 0.01
    assert train["error"]["model"] == train["error"]["ols"]
    validate_eval_json({"run_dir": None, "step": None, **data})


def test_implicit_fit_and_query_gradients_of_a_nonlinear_predictor():
    """For a non-linear predictor (kNN-like averaging of y) R² < 1 and the gradient of the
    quadratic predictor ŷ_i = (x_i · b_i)² is 2 (x_i · b_i) b_i, checked against NumPy."""
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((40, 5, 2)).astype(np.float32)
    ys = rng.standard_normal((40, 5)).astype(np.float32)
    queries = rng.standard_normal((40, 6, 2)).astype(np.float32)

    def square(xs, ys):
        b = baselines.averaging_weights(xs, ys)  # (B, n, d), b_i / i
        return baselines.predict_with_weights(b, xs) ** 2

    grads = np.asarray(metrics.query_gradients(jax.tree_util.Partial(square), xs, ys))
    b = np.asarray(baselines.averaging_weights(xs, ys), np.float64)
    u = np.einsum("bnd,bnd->bn", b, xs)
    assert np.allclose(grads, 2 * u[..., None] * b, atol=1e-5)
    preds = metrics.query_predictions(jax.tree_util.Partial(square), xs, ys, queries)
    ref = np.einsum("bqd,bnd->bnq", queries, b) ** 2
    assert np.allclose(preds, ref, atol=1e-5)
    _, r2 = metrics.implicit_weights(preds, queries)
    assert np.all(np.asarray(r2)[1:] < 0.9)


@pytest.mark.parametrize("encoding", ["paired", "interleaved"])
def test_one_pass_query_model_equals_a_forward_per_point(encoding, tmp_path):
    """The GPT's cached one-pass query predictions and their JVP gradients equal the generic
    path (a full forward per point with x_i replaced) for a trained model, both encodings."""
    from icl_regression.evaluate import scoring

    cfg = tiny_config(task=TaskConfig(d=3, n_points=7), steps=10,
                      model=GPTConfig(n_layer=2, n_head=2, d_model=16, encoding=encoding))
    train_run(cfg, tmp_path)
    run = load_run(tmp_path)
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((6, 7, 3)).astype(np.float32)
    ys = rng.standard_normal((6, 7)).astype(np.float32)
    queries = rng.standard_normal((6, 6, 3)).astype(np.float32)
    model, query_model = run.function(), run.query_function()
    slow = np.asarray(metrics.query_predictions(model, xs, ys, queries), np.float64)
    fast = np.asarray(scoring._one_pass_query_preds(query_model, xs, ys, queries), np.float64)
    assert fast.shape == (6, 7, 6) and np.abs(slow).max() > 0.1
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
    slow_grads = np.asarray(metrics.query_gradients(model, xs, ys), np.float64)
    fast_grads = np.asarray(scoring._one_pass_query_grads(query_model, xs, ys), np.float64)
    assert fast_grads.shape == (6, 7, 3) and np.abs(slow_grads).max() > 1e-3
    np.testing.assert_allclose(fast_grads, slow_grads, rtol=1e-4, atol=1e-5)


def test_ood_settings_do_what_they_say():
    rng = np.random.default_rng(1)
    task = TaskConfig(d=4, n_points=9)
    xs = rng.standard_normal((60, 9, 4)).astype(np.float32)
    ws = rng.standard_normal((60, 4)).astype(np.float32)
    noise = 0.1 * rng.standard_normal((60, 9))
    base = shifts.Prompts(xs, (np.einsum("bnd,bd->bn", xs, ws) + noise).astype(np.float32), ws)
    key = jax.random.key(0)
    make = lambda name: shifts.make_setting(name, key, base, task)  # noqa: E731
    for name in shifts.SETTINGS:  # labels are x·w plus the base noise (plus extra noise: noisy)
        p = make(name)
        resid = p.ys - np.einsum("bnd,bd->bn", p.xs, p.ws) - noise
        assert (np.abs(resid).max() < 1e-4) == (name != "noisy_labels"), name
    ortho = make("orthogonal_query")
    pos = ortho.eval_position
    assert set(pos) == set(range(4))
    query = ortho.xs[np.arange(60), pos]
    for b in range(60):
        assert np.allclose(ortho.xs[b, :pos[b]] @ query[b], 0, atol=1e-4)
    before = np.linalg.norm(xs[np.arange(60), pos], axis=-1)
    assert np.allclose(np.linalg.norm(query, axis=-1), before, rtol=1e-4)
    rep = make("repeated_query")
    assert all(any(np.array_equal(rep.xs[b, rep.eval_position[b]], rep.xs[b, j])
                   for j in range(rep.eval_position[b])) for b in range(60))
    orthant = make("orthant")
    context = orthant.xs[np.arange(9)[None, :] != orthant.eval_position[:, None]].reshape(60, 8, 4)
    assert np.all(np.abs(np.sign(context).sum(axis=1)) == 8)  # one sign pattern per prompt
    assert np.linalg.matrix_rank(make("half_subspace").xs[0]) == 2
    assert np.allclose(make("x_scale_3").xs, 3 * xs)
    assert np.allclose(make("shifted_w").ws - ws, 0.5)
    with pytest.raises(ValueError, match="'nope' is unknown; allowed: train"):
        make("nope")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train_run(tiny_config(steps=10, log_every=5, ckpt_every=5,
                                   task=TaskConfig(d=3, n_points=6, noise_std=0.3)), run_dir)
    return run_dir


def test_run_eval_json_schema_atomic_write_and_determinism(tiny_run, tmp_path):
    cfg = dataclasses.replace(SMALL, settings=("train", "orthogonal_query", "x_scale_2"),
                              run_dir=str(tiny_run))
    out = run_from_config(cfg)
    assert out == tiny_run / "eval.json"
    data = json.loads(out.read_text())
    validate_eval_json(data)
    assert sorted(p.name for p in tiny_run.iterdir() if p.name.startswith(".eval.")) == []
    train = data["settings"]["train"]
    assert train["k"] == list(range(6)) and len(train["ilwd_r2"]) == 6  # tiny run: d=3, n=6
    assert set(train["spd"]) == set(data["predictors"]) == NAMES
    assert data["settings"]["orthogonal_query"]["k"] == [0, 1, 2]  # k < d only
    assert data["settings"]["orthogonal_query"]["ilwd"] == {}
    assert np.allclose(train["error"]["zero"]["mean"], 1.0, atol=0.3)
    table = format_table(data)
    assert "| model |" in table and "| k=1 | k=3 |" in table  # k = 1, d/2 = 1, d; 2d ≥ n
    again = evaluate_run(str(tiny_run), cfg)  # same seed: the same numbers (rewritten file)
    assert json.loads(json.dumps(again)) == data == json.loads(out.read_text())
    other = evaluate_run(load_run(tiny_run), cfg, seed=7)
    assert other["settings"]["train"]["error"] != data["settings"]["train"]["error"]
    broken = json.loads(out.read_text())
    del broken["settings"]["train"]["error"]["zero"]["hi"]
    with pytest.raises(ValueError, match=r"settings.train.error.zero.hi"):
        write_eval_json(tmp_path / "eval.json", broken)
    assert not (tmp_path / "eval.json").exists()


def test_cli_config_composes_and_bad_input_is_one_line_error(tmp_path):
    register_eval_schema()
    cfg = _eval_config(compose(["task=noisy", "task.d=4", "n_prompts=50", "settings=[train]"],
                               config_name="evaluate"))
    assert cfg.task.d == 4 and cfg.task.noise_std == 0.5 and cfg.settings == ("train",)
    assert cfg.implicit_settings == ("train",)
    for bad, match in ((dict(settings=("train", "nope")), "settings='nope' is not allowed"),
                       (dict(run_dir=str(tmp_path)), "holds no checkpoints"),
                       (dict(ridge_grid=RidgeGridKnobs(lams=(0.0,))), "ridge_grid.lams"),
                       (dict(implicit_queries=3), "implicit_queries=3")):
        with pytest.raises(ValueError, match=match):
            run_from_config(dataclasses.replace(cfg, **bad))
    assert not any(tmp_path.iterdir())
