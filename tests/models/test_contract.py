"""Every registered model against the model contract (models/contract.py): a model is tested by
being registered. Causality, the shapes of preds and intermediates, the lens at the last layer,
parameters a pure function of the seed, its config group, and a 2-step training run; then the
apps (CLI training, evaluation, probes, layer by layer, attention maps) on a model without
attention."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import CONF_DIR, tiny_config

from icl_regression.cli import compose_train
from icl_regression.config import MODEL_CONFIGS, ConfigError, TaskConfig
from icl_regression.models import build_model, model_names
from icl_regression.models.contract import ICLModel
from icl_regression.train.loop import train_run

TASK = TaskConfig(d=3, n_points=5)
NAMES = model_names()
SMALL_KEYS = {"n_layer": 2, "d_model": 8, "n_loops": 2, "d_state": 4, "filter_width": 8}
# Training compiles each model's whole update (10-30 s apiece on 2 cores): two in the default
# suite (a recurrent model and an attention one), every model with -m slow.
TRAINED_BY_DEFAULT = ("lstm", "linear_attention")


def tiny_model_config(name: str):
    """The model's own keys at their defaults, sized down."""
    own = MODEL_CONFIGS.get(name)
    fields = {f.name for f in dataclasses.fields(own)}
    return own(name=name, **{k: v for k, v in SMALL_KEYS.items() if k in fields})


def prompts(seed: int = 0, batch: int = 2):
    kx, ky = jax.random.split(jax.random.key(seed))
    return (np.asarray(jax.random.normal(kx, (batch, TASK.n_points, TASK.d))),
            np.asarray(jax.random.normal(ky, (batch, TASK.n_points))))


def test_the_registry_holds_the_compared_models():
    assert {"gpt", "lsa", "lstm", "gru", "mamba", "linear_attention", "hyena", "looped",
            "mambaformer"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_causal_a_later_pair_never_changes_an_earlier_prediction(name):
    model = build_model(tiny_model_config(name), TASK, 0)
    forward = jax.jit(lambda xs, ys: model(xs, ys))  # one compilation for the 11 calls
    xs, ys = prompts()
    preds = np.asarray(forward(xs, ys))  # (B, n)
    for j in range(TASK.n_points):
        later_x, later_y = xs.copy(), ys.copy()
        later_x[:, j] += 3.0
        later_y[:, j] += 3.0
        moved_x, moved_y = np.asarray(forward(later_x, ys)), np.asarray(forward(xs, later_y))
        # x_j reaches prediction j on; y_j only predictions after j (FFT rounding: atol)
        np.testing.assert_allclose(moved_x[:, :j], preds[:, :j], atol=1e-5, err_msg=f"x_{j}")
        np.testing.assert_allclose(moved_y[:, :j + 1], preds[:, :j + 1], atol=1e-5,
                                   err_msg=f"y_{j}")
        if j > 0:  # with no pair before it a prediction may be a constant (LSA: 0)
            assert np.abs(moved_x[:, j] - preds[:, j]).max() > 1e-4  # the query is read
        if j + 1 < TASK.n_points:
            assert np.abs(moved_y[:, j + 1:] - preds[:, j + 1:]).max() > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_shapes_of_preds_and_intermediates_and_the_lens(name):
    model = build_model(tiny_model_config(name), TASK, 0)
    assert isinstance(model, ICLModel)
    xs, ys = prompts(1, batch=3)
    n, out = TASK.n_points, model.intermediates(xs, ys)
    preds, residuals = np.asarray(out["preds"]), np.asarray(out["residuals"])
    n_tokens = model.n_tokens(n)
    assert preds.shape == (3, n) and preds.dtype == np.float32
    assert residuals.shape[:3] == (model.n_layers + 1, 3, n_tokens)
    np.testing.assert_allclose(preds, np.asarray(model(xs, ys)), atol=1e-6)
    at_x = residuals[-1][:, model.x_positions(n)]  # (B, n, width)
    np.testing.assert_allclose(np.asarray(model.lens(at_x)), preds, atol=1e-5)
    assert ("attention" in out) == model.has_attention
    if model.has_attention:
        attention = np.asarray(out["attention"])
        assert attention.ndim == 5 and attention.shape[1] == 3
        assert attention.shape[-2:] == (n_tokens, n_tokens)
    positions = model.x_positions(n)
    assert positions.shape == (n,) and positions.max() < n_tokens
    labels = model.y_positions(n)
    assert labels is None or (labels.shape == (n,) and labels.max() < n_tokens)
    assert model.max_points is None or model.max_points >= n


@pytest.mark.parametrize("name", NAMES)
def test_parameters_are_a_pure_function_of_the_seed(name):
    from flax import nnx

    cfg = tiny_model_config(name)
    first, again, other = (jax.tree.leaves(nnx.state(build_model(cfg, TASK, seed), nnx.Param))
                           for seed in (0, 0, 1))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("name", [n for n in NAMES if (CONF_DIR / "model" / f"{n}.yaml").exists()])
def test_config_group_composes_the_models_own_keys(name):
    cfg = compose_train([f"model={name}", "debug=default"])
    assert type(cfg.model) is MODEL_CONFIGS.get(name) and cfg.model.name == name
    assert (cfg.model.n_layer, cfg.model.d_model) == (1, 16)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "gpt"])
def test_a_gpt_only_key_is_refused_for_other_models(name):
    own = {f.name for f in dataclasses.fields(MODEL_CONFIGS.get(name))}
    key = next(k for k in ("remat", "positions", "n_head") if k not in own)
    with pytest.raises(ConfigError, match=rf"^model\.{key}=.* is not allowed; unknown key"):
        compose_train([f"model={name}", f"model.{key}=none"])


@pytest.mark.parametrize("name", [n if n in TRAINED_BY_DEFAULT else pytest.param(
    n, marks=pytest.mark.slow) for n in NAMES])
def test_two_training_steps(name, tmp_path):
    cfg = tiny_config(model=tiny_model_config(name), task=TASK, steps=2, batch_size=4,
                      log_every=1, ckpt_every=1)
    summary = train_run(cfg, tmp_path)
    assert summary["step"] == 2 and summary["n_params"] > 0
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2 and all(np.isfinite(r["loss"]) for r in records)


def test_cli_trains_an_lstm_and_refuses_a_gpt_key(tmp_path):
    refused = subprocess.run([sys.executable, "-m", "icl_regression.train", "model=lstm",
                              "model.n_head=4", f"hydra.run.dir={tmp_path / 'no'}"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith("error: model.n_head='4' is not allowed; unknown key")
    assert not (tmp_path / "no").exists()
    done = subprocess.run([sys.executable, "-m", "icl_regression.train", "model=lstm",
                           "debug=default", f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert stored["name"] == "lstm" and "n_head" not in stored
