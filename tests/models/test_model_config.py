"""Open model configuration: model.name against the registry, each model's own keys, one-line
refusals, and runs stored with the old flat ModelConfig (every model's keys in one record)
loading and resuming."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import tiny_config

from icl_regression.cli import compose_train
from icl_regression.config import (
    ConfigError,
    GPTConfig,
    LSAConfig,
    LSTMConfig,
    ModelConfig,
    TaskConfig,
    TrainConfig,
    model_label,
    validate,
)
from icl_regression.storage import load_config
from icl_regression.train.loop import check_resumable, train_run

# What training wrote for model= before each model had its own keys.
FLAT = {"name": "gpt", "n_layer": 1, "n_head": 2, "d_model": 8, "mlp_ratio": 4,
        "encoding": "paired", "positions": "learned", "max_len": 0, "dtype": "float32",
        "param_dtype": "float32", "remat": "dots", "tie_layers": False, "use_mlp": False,
        "use_layernorm": False}


def as_flat(cfg: TrainConfig) -> dict:
    """cfg's config.json as the flat ModelConfig wrote it."""
    stored = json.loads(json.dumps(dataclasses.asdict(cfg)))
    stored["model"] = {**FLAT, **stored["model"]}
    return stored


@pytest.mark.parametrize("name, own", [("gpt", GPTConfig), ("lsa", LSAConfig)])
def test_an_old_flat_config_json_loads_as_the_models_own_keys(name, own, tmp_path):
    model = {**FLAT, "name": name, "tie_layers": name == "lsa"}
    config = {**json.loads(json.dumps(dataclasses.asdict(tiny_config()))),
              "model": model}
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_config(tmp_path).model
    assert type(loaded) is own and loaded.n_layer == 1 and loaded.d_model == 8
    if name == "lsa":
        assert loaded.tie_layers is True and not hasattr(loaded, "remat")
    else:
        assert (loaded.n_head, loaded.remat, loaded.encoding) == (2, "dots", "paired")


def test_a_run_stored_with_the_flat_config_resumes(tmp_path):
    cfg = tiny_config(model=GPTConfig(n_layer=1, n_head=2, d_model=8),
                      task=TaskConfig(d=2, n_points=4), steps=2, batch_size=4, log_every=1,
                      ckpt_every=1)
    train_run(cfg, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(as_flat(cfg)))
    check_resumable(cfg, tmp_path)  # the flat record is the same run
    summary = train_run(dataclasses.replace(cfg, steps=3), tmp_path)
    assert summary["step"] == 3
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    (tmp_path / "config.json").write_text(json.dumps(as_flat(cfg) | {
        "model": {**as_flat(cfg)["model"], "n_head": 1}}))
    with pytest.raises(ConfigError, match="model.n_head=2 differs"):
        check_resumable(cfg, tmp_path)


@pytest.mark.parametrize("overrides, message", [
    (["model=lstm", "model.n_head=4"], "model.n_head='4' is not allowed; unknown key; model "
                                       "'lstm' has: name, n_layer, d_model"),
    (["model=gpt", "model.tie_layers=true"], "model.tie_layers='true' is not allowed; unknown"),
    (["model.name=nope"], "model.name='nope' is not allowed; choose from gpt, lsa"),
    (["model=nope"], "model='nope' is not allowed; choose from gpt, gru"),
    (["model=mamba", "model.d_state=0"], "model.d_state=0 is not allowed; must be >= 1"),
    (["model=linear_attention", "model.n_head=3"], "model.n_head=3 is not allowed; must divide"),
])
def test_bad_model_keys_are_one_line(overrides, message):
    with pytest.raises(ConfigError) as error:
        compose_train(overrides)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_bare_model_config_is_its_models_own_keys_and_labels_come_from_the_registry():
    assert type(TrainConfig().model) is GPTConfig
    cfg = TrainConfig(model=ModelConfig(name="lstm", n_layer=2, d_model=8))
    assert type(cfg.model) is LSTMConfig and cfg.model.encoding == "paired"
    validate(cfg)
    with pytest.raises(ConfigError, match="model.name='gpt' is not allowed"):
        validate(TrainConfig(model=LSTMConfig(name="gpt")))
    assert (model_label("gpt"), model_label("lstm"), model_label("unknown")) == (
        "transformer", "LSTM", "unknown")


@pytest.mark.parametrize("model, message", [
    ({"name": "lstm", "d_state": 4}, "model.d_state=4 is not allowed; unknown key; model 'lstm'"),
    ({"name": "mamba", "d_state": "x"}, "model.d_state='x' is not allowed; must be an integer"),
    ({"name": "zzz"}, "model.name='zzz' is not allowed; choose from gpt"),
])
def test_a_stored_config_with_a_bad_model_key_is_one_line(model, message):
    from icl_regression.config import to_dataclass

    with pytest.raises(ConfigError) as error:
        to_dataclass({"model": model})
    assert str(error.value).startswith(message)
