"""The attention probe with an MLP read-out, and the probe-study summary of probes.json."""

from __future__ import annotations

import jax
import numpy as np

from icl_regression.probes.kinds import FitOptions, Split
from icl_regression.probes.probing import fit_probes
from icl_regression.probes.study import format_study, study_summary


def test_attention_mlp_reads_a_nonlinear_function_of_a_pooled_sum():
    """Target |Σ_t a_t,0| at the last token: pooling gives the sum, only an MLP takes |·|."""
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(1, 1500, 4, 3)).astype(np.float32)  # (L, N, T, D)
    target = np.abs(acts[0, :, :, 0].sum(-1))[None, :, None, None]  # (G, N, P=1, d=1)
    split = Split.random(0, 1500)
    options = FitOptions(hidden=32, learning_rate=1e-2, batch_size=256, max_steps=1200,
                         eval_every=50, patience=4)
    scores = {family: fit_probes(family, acts, np.array([3]), target.astype(np.float64), split,
                                 options, jax.random.key(0))[0][0, 0, 0]
              for family in ("attention", "attention_mlp")}
    assert scores["attention_mlp"] > 0.8 and scores["attention"] < 0.3, scores


def fake_result(trained, untrained, fixed):
    grid = lambda v: [[v * 0.5, v * 0.5], [v, v]]  # (2 layers, 2 positions); layer 1 best
    entry = {"r2": grid(trained), "control_r2": grid(untrained), "fixed_w_r2": grid(fixed)}
    return {"d": 2, "k": [2, 3], "layers": [0, 1],
            "targets": {"xty": {"attention_mlp": entry}, "w_ols": {"attention_mlp": entry}}}


def test_study_summary_picks_the_best_layer_and_checks_the_margin():
    row = study_summary(fake_result(0.9, 0.4, 0.5))["xty"]["attention_mlp"]
    assert row == {"layer": 1, "trained": 0.9, "untrained": 0.4, "fixed_w": 0.5, "met": True}
    assert "reproduced by xty: attention_mlp" in format_study(fake_result(0.9, 0.4, 0.5))
    assert "not reproduced" in format_study(fake_result(0.9, 0.4, 0.7))  # margin 0.2 < 0.3
    assert "not reproduced" in format_study(fake_result(0.7, 0.1, 0.1))  # R² below 0.8
