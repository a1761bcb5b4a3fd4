"""Layer-by-layer read-outs and the layer ↔ iteration matching: the lens of the last layer is
the model's prediction, the matching finds a planted iteration, layerwise.json round-trips."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest
from conftest import compose, tiny_config

from icl_regression.baselines import iterative
from icl_regression.config import ModelConfig, to_dataclass
from icl_regression.evaluate import matching
from icl_regression.evaluate.app import register_eval_schema
from icl_regression.evaluate.evaluation import check_config, eval_config_type
from icl_regression.evaluate.layerwise import (
    layer_readouts,
    layerwise_run,
    read_layerwise_json,
    validate_layerwise_json,
)
from icl_regression.figures.layerwise import layerwise_figures
from icl_regression.models import build_model
from icl_regression.run import Run


def tiny_run(path, encoding="paired", seed=3):
    cfg = tiny_config()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, encoding=encoding))
    return Run(path, cfg, build_model(cfg.model, cfg.task, seed), step=0)


@pytest.mark.parametrize("encoding", ["paired", "interleaved"])
def test_lens_of_last_layer_is_the_models_prediction(tmp_path, encoding):
    run = tiny_run(tmp_path, encoding)
    xs, ys, _ = run.sample(jax.random.key(0), 40)
    hidden, lens = layer_readouts(run, np.asarray(xs), np.asarray(ys), chunk=16)
    n_layer, n = run.config.model.n_layer, run.config.task.n_points
    assert hidden.shape == (n_layer + 1, 40, n, run.config.model.d_model)
    preds = np.asarray(run.predict(xs, ys))
    assert np.allclose(lens[-1], preds, rtol=1e-6, atol=1e-6)
    assert not np.allclose(lens[0], preds, atol=1e-3)  # earlier layers read differently


def test_matching_recovers_a_planted_newton_iteration():
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((200, 9, 3)).astype(np.float32)
    ys = (xs @ rng.standard_normal(3) / np.sqrt(3)).astype(np.float32)  # (B, n)
    its = matching.default_iterations("newton", 3)
    preds = np.asarray(iterative.iterate_predictions("newton", xs, ys, its))  # (T, B, n)
    readout = preds[[0, 2, 5]]  # three "layers" that run 0, 2 and 5 iterations
    spd = matching.spd_grid(readout, preds, 1.0)  # (3, T, n)
    per_k, by_layer = matching.best_iterations(spd, its)
    assert by_layer.tolist() == [0, 2, 5]
    assert np.all(per_k[1, 1:4] == 2)  # before convergence each k has its own best t
    slope, _ = matching.fitted_slope([1, 2, 3], [2, 4, 6])
    assert slope == pytest.approx(2.0)


def test_layerwise_json_round_trip_and_schema_errors(tmp_path):
    run = tiny_run(tmp_path, "interleaved")
    data = layerwise_run(run, n_prompts=120, settings=("train", "kappa_100"),
                         algorithms=("newton", "gd"))
    stored = read_layerwise_json(tmp_path / "layerwise.json")
    assert stored == json.loads(json.dumps(data))
    n_layers, n_k = len(stored["layers"]), len(stored["k"])
    assert (n_layers, n_k) == (run.config.model.n_layer + 1, run.config.task.n_points)
    gd = stored["match"]["gd"]
    assert np.array(gd["spd"], dtype=float).shape == (n_layers, len(gd["iterations"]), n_k)
    assert set(stored["settings"]) == {"train", "kappa_100"}
    drawn = [name for name, build in layerwise_figures(stored) if build().axes]
    assert drawn == ["layerwise_readout", "layerwise_match", "layerwise_match_kappa_100",
                     "layerwise_best_iteration"]
    broken = json.loads(json.dumps(data))
    broken["match"]["newton"]["best_iteration"] = broken["match"]["newton"]["best_iteration"][1:]
    with pytest.raises(ValueError, match="match.newton.best_iteration"):
        validate_layerwise_json(broken)


def test_lens_of_an_lsa_reads_its_last_layer_as_its_prediction(tmp_path):
    """The lens is the model's own read-out (model contract), not a GPT's parameters."""
    cfg = tiny_config(model=ModelConfig(name="lsa", n_layer=2, d_model=16))
    run = Run(tmp_path, cfg, build_model(cfg.model, cfg.task, 0), step=0)
    xs, ys, _ = run.sample(jax.random.key(1), 4)
    hidden, lens = layer_readouts(run, np.asarray(xs), np.asarray(ys))
    assert hidden.shape == (3, 4, cfg.task.n_points, cfg.task.d + 1)
    np.testing.assert_allclose(lens[-1], np.asarray(run.predict(xs, ys)), atol=1e-6)
    np.testing.assert_allclose(lens[0], -hidden[0][..., -1], atol=0)  # minus the y slot


def test_figures_module_reads_json_only():
    """figures/ must never import JAX or model code (they redraw from stored files)."""
    import subprocess
    import sys

    code = ("import sys, icl_regression.figures.layerwise, icl_regression.figures.app; "
            "print(any(m.split('.')[0] in ('jax', 'flax') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_flag_composes_and_needs_a_run():
    register_eval_schema()
    cfg = to_dataclass(compose(["layerwise=true", "settings=[train]"], config_name="evaluate"),
                       eval_config_type())
    assert cfg.layerwise is True
    with pytest.raises(ValueError, match="layerwise=True is not allowed; needs run_dir"):
        check_config(cfg)
