"""The apps on a tiny trained model without attention (an LSTM): evaluation, probes and the
layer-by-layer analysis write their files through the model contract; the attention maps say
in one line that there are none, and never fail."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_config

from icl_regression.analysis.attention import write_attention
from icl_regression.config import LSTMConfig, TaskConfig
from icl_regression.evaluate.evaluation import EvalConfig, evaluate_run
from icl_regression.evaluate.layerwise import layerwise_run
from icl_regression.figures import per_run
from icl_regression.figures.app import AttentionOptions
from icl_regression.figures.attention import read_attention
from icl_regression.figures.per_run import FigureSkipped
from icl_regression.figures.stored_runs import load_record
from icl_regression.probes.probing import ProbeOptions, probe_run
from icl_regression.run import load_run
from icl_regression.train.loop import train_run


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("lstm")
    cfg = tiny_config(model=LSTMConfig(n_layer=2, d_model=8), task=TaskConfig(d=2, n_points=5),
                      steps=4, batch_size=8, log_every=2, ckpt_every=2)
    train_run(cfg, run_dir)
    return run_dir


def test_evaluation_writes_eval_json_and_no_attention_maps(lstm_run):
    evaluate_run(str(lstm_run), EvalConfig(n_prompts=64, implicit_prompts=16, progress=False,
                                           settings=("train",), expensive_prompts=8))
    data = json.loads((lstm_run / "eval.json").read_text())
    assert data["settings"]["train"]["k"] == list(range(5))
    assert not (lstm_run / "attention.npz").exists()


def test_attention_command_says_there_are_none_and_the_figure_is_skipped(lstm_run):
    done = subprocess.run([sys.executable, "-m", "icl_regression.analysis.attention",
                           f"run_dir={lstm_run}", "seed=3"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "no attention maps: model 'lstm' has no attention"
    stored = read_attention(lstm_run)  # empty, so the figures do not ask again
    assert stored["attention"].shape == (0, 0, 0, 0) and stored["seed"] == 3
    assert write_attention(load_run(lstm_run), seed=3) == lstm_run / "attention.npz"
    with pytest.raises(FigureSkipped, match="the model has no attention"):
        per_run._attention_figure(load_record(lstm_run), AttentionOptions())


def test_probes_use_the_models_layers_and_tokens(lstm_run):
    result = probe_run(lstm_run, ProbeOptions(targets=("w",), probes=("linear",), n_prompts=200,
                                              progress=False))
    assert result["layers"] == [0, 1, 2] and result["positions"] == list(range(5))
    r2 = np.array(result["targets"]["w"]["linear"]["r2"], float)
    assert r2.shape == (3, 5)
    assert (lstm_run / "probes.json").is_file()


def test_layerwise_reads_each_layer_through_the_models_lens(lstm_run):
    data = layerwise_run(lstm_run, n_prompts=100, settings=("train",),
                         algorithms=("gd",))
    assert data["layers"] == [0, 1, 2]
    lens = np.array(data["readout_error"]["lens"], dtype=float)
    assert lens.shape == (3, 5) and np.isfinite(lens).all()
    assert (lstm_run / "layerwise.json").is_file()
