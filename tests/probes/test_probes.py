"""Probes: probe families on synthetic activations, targets against float64 NumPy, the controls,
probes.json's schema and reproducibility, and the command line's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import ROOT, tiny_config

from icl_regression.config import ConfigError, TaskConfig
from icl_regression.data import tasks
from icl_regression.data.tokens import x_positions, y_positions
from icl_regression.models import build_model
from icl_regression.probes.kinds import FitOptions, Split
from icl_regression.probes.options import ProbeOptions, probe_options
from icl_regression.probes.probing import fit_probes, probe_run
from icl_regression.probes.summary import best_layers
from icl_regression.probes.targets import (
    TARGETS,
    all_prefix_targets,
    prefix_lengths,
)
from icl_regression.run import Run

SMALL_FIT = FitOptions(hidden=16, batch_size=64, max_steps=60, eval_every=20, patience=2)


def synthetic(seed: int, n_prompts: int = 2000, d: int = 3, n_features: int = 8):
    """Layer 0 is an exact linear map of target 0 (a different map per position); layers 1..5
    are independent of every target. Target 1 is independent of all activations."""
    rng = np.random.default_rng(seed)
    targets = rng.normal(size=(2, n_prompts, 2, d))  # (G, N, P, d)
    maps = rng.normal(size=(2, d, n_features))  # (P, d, D)
    layer0 = np.einsum("npd,pde->npe", targets[0], maps)  # (N, P, D)
    noise = rng.normal(size=(5, n_prompts, 2, n_features))
    return np.concatenate([layer0[None], noise]).astype(np.float32), targets


def test_linear_probe_exact_map_gives_one_independent_gives_zero():
    acts, targets = synthetic(0)
    split = Split.random(0, acts.shape[1])
    r2, mse = fit_probes("linear", acts, np.arange(2), targets, split, FitOptions(),
                         jax.random.key(1))  # (G, L, P)
    assert np.all(r2[0, 0] > 0.9999) and np.all(mse[0, 0] < 1e-3)
    independent = np.concatenate([r2[0, 1:].ravel(), r2[1].ravel()])
    assert np.all(independent < 0.01) and np.all(independent > -0.1)


def test_mlp_probe_recovers_nonlinear_map_linear_cannot():
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(1, 2000, 1, 4)).astype(np.float32)  # (L, N, T, D)
    targets = np.abs(acts[:, :, :, :3]).astype(np.float64)  # (G=1, N, P=1, d=3): |a|, even
    split = Split.random(0, 2000)
    options = FitOptions(hidden=32, learning_rate=1e-2, batch_size=256, max_steps=1500,
                         eval_every=50, patience=4)
    linear_r2, _ = fit_probes("linear", acts, np.arange(1), targets, split, options,
                              jax.random.key(2))
    mlp_r2, _ = fit_probes("mlp", acts, np.arange(1), targets, split, options, jax.random.key(2))
    assert linear_r2.item() < 0.02
    assert mlp_r2.item() > 0.95


def test_prefix_lengths_for_both_encodings():
    for encoding, expected in (("paired", [0, 1, 2, 3]), ("interleaved", [0, 1, 1, 2, 2, 3, 3, 4])):
        k = prefix_lengths(x_positions(encoding, 4), y_positions(encoding, 4), len(expected))
        assert k.tolist() == expected, encoding


def numpy_targets(xs, ys, ws, lam, eta):
    """Per prompt and prefix, float64: lstsq (min-norm), ridge solve, Xᵀy, η Xᵀy, w."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    batch, n, d = xs.shape
    out = {name: np.zeros((batch, n + 1, d)) for name in TARGETS}
    for b in range(batch):
        for k in range(n + 1):
            x, y = xs[b, :k], ys[b, :k]
            out["w"][b, k] = ws[b]
            if k == 0:
                continue
            out["w_ols"][b, k] = np.linalg.lstsq(x, y, rcond=None)[0]
            out["w_ridge"][b, k] = (np.linalg.solve(x.T @ x + lam * np.eye(d), x.T @ y)
                                    if lam > 0 else out["w_ols"][b, k])
            out["xty"][b, k] = x.T @ y
            out["w_gd"][b, k] = eta[k] * (x.T @ y)
    return out


@pytest.mark.parametrize("noise_std", [0.0, 0.5])  # λ* = 0 (ridge = ols) and λ* = 0.75
def test_targets_equal_numpy_per_prefix_including_rank_deficient(noise_std):
    task = TaskConfig(d=3, n_points=6, noise_std=noise_std)
    xs, ys, ws = tasks.sample_prompts(jax.random.key(3), task, 16)
    lam = tasks.bayes_ridge_lambda(task)
    eta = np.linspace(0.1, 0.7, task.n_points + 1)
    ours = all_prefix_targets(xs, ys, ws, TARGETS, lam, eta)
    reference = numpy_targets(xs, ys, np.asarray(ws), lam, eta)
    for name in TARGETS:
        assert ours[name].shape == (16, 7, 3)
        np.testing.assert_allclose(ours[name], reference[name], rtol=1e-3, atol=1e-4,
                                   err_msg=name)


def untrained_run(path: Path, seed: int = 0, n_points: int = 8) -> Run:
    cfg = tiny_config(task=TaskConfig(d=3, n_points=n_points))
    return Run(path, cfg, build_model(cfg.model, cfg.task, seed), step=0)


def test_untrained_model_gives_low_r2_for_w_at_large_k(tmp_path):
    result = probe_run(untrained_run(tmp_path), ProbeOptions(
        targets=("w",), probes=("linear",), n_prompts=1500, progress=False), write=False)
    r2 = np.array(result["targets"]["w"]["linear"]["r2"], float)  # (layers, positions)
    assert result["k"][-1] == 7 and r2.shape == (3, 8)
    assert np.all(r2[:, -1] < 0.1)


def check_schema(data: dict, targets, probes, controls) -> None:
    """The documented probes.json schema, checked independently of the writer."""
    n_layers, n_positions = len(data["layers"]), len(data["positions"])
    assert all(isinstance(v, int) for v in data["layers"] + data["positions"] + data["k"])
    assert len(data["k"]) == len(data["token_kinds"]) == n_positions
    assert set(data["token_kinds"]) <= {"x", "y"}
    for key, kind in (("schema_version", int), ("n_prompts", int), ("d", int), ("split", dict),
                      ("encoding", str), ("gd_eta", list), ("controls", dict), ("fit", dict)):
        assert isinstance(data[key], kind), key
    assert sorted(data["targets"]) == sorted(targets)
    grid_keys = {"r2", "mse"} | {f"{c}{m}" for c in controls for m in ("r2", "mse")}
    grid_keys |= {"selectivity"} if "control_" in controls else set()
    grid_keys |= {"fixed_w_selectivity"} if "fixed_w_" in controls else set()
    for target in targets:
        assert sorted(data["targets"][target]) == sorted(probes)
        for probe in probes:
            scores = data["targets"][target][probe]
            assert set(scores) == grid_keys
            for grid in scores.values():
                assert len(grid) == n_layers and all(len(row) == n_positions for row in grid)
                assert all(v is None or isinstance(v, float) for row in grid for v in row)


def test_probes_json_schema_and_same_seed_same_numbers(tmp_path):
    run = untrained_run(tmp_path, n_points=5)
    control = untrained_run(tmp_path / "other", seed=7, n_points=5)
    options = ProbeOptions(n_prompts=300, progress=False, mlp=SMALL_FIT, attention=SMALL_FIT,
                           layers=(0, 2), positions=(1, 3, 4))
    first = probe_run(run, options, control_run=control)
    written = (tmp_path / "probes.json").read_text()
    check_schema(json.loads(written), TARGETS, ("linear", "mlp", "attention"),
                 ("control_", "fixed_w_"))
    assert json.loads(written)["k"] == [1, 3, 4]
    eta = first["gd_eta"]  # η*_k for k = 0..n, tuned on prompts apart from the probe prompts
    assert len(eta) == 6 and eta[0] == 0 and all(0 < e < 1 for e in eta[1:])
    assert first["targets"]["w_ols"]["linear"]["r2"][0][0] is not None
    probe_run(run, options, control_run=control)
    assert (tmp_path / "probes.json").read_text() == written  # same seed: identical numbers
    other = probe_run(run, options, probes=("linear",), untrained_control=False, seed=1,
                      write=False)
    assert other["targets"]["w"]["linear"]["r2"] != first["targets"]["w"]["linear"]["r2"]


def test_best_layers_summary():
    result = {"layers": [0, 1, 2], "positions": [0, 1, 2, 3], "k": [0, 1, 1, 2],
              "token_kinds": ["x", "y", "x", "y"],
              "targets": {"w": {"linear": {"r2": [[0.0, 0.1, 0.2, 0.3], [0.0, 0.5, 0.4, 0.9],
                                                  [0.0, 0.9, 0.3, 0.2]],
                                           "control_r2": [[0.0] * 4, [0.1] * 4, [0.2] * 4]}}}}
    summary = best_layers(result, (1, 2, 5))["w"]
    assert summary[1] == {"layer": 1, "position": 2, "r2": 0.4, "control_r2": 0.1}  # x token
    assert summary[2]["layer"] == 1 and summary[2]["r2"] == 0.9
    assert summary[5] is None


def test_bad_options_are_refused_before_compute(tmp_path):
    with pytest.raises(ConfigError, match="targets='v' is not allowed"):
        probe_options({"targets": ["w", "v"]})
    with pytest.raises(ConfigError, match="mlp.hidden"):
        probe_options({"mlp": {"hidden": 0}})
    with pytest.raises(ConfigError, match="layers=\\[0, 9\\] is not allowed; this run has layers"):
        probe_run(untrained_run(tmp_path), ProbeOptions(layers=(0, 9), progress=False))
    assert not (tmp_path / "probes.json").exists()


def test_command_line_error_is_one_line_and_leaves_files(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "probes.json").write_text("{}")
    for args, expected in (([f"run_dir={tmp_path}", "probes=[linear,svm]"], "probes='svm'"),
                           (["targets=[w]"], "run_dir is required")):
        done = subprocess.run([sys.executable, "-m", "icl_regression.probes", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert done.returncode == 2
        assert done.stderr.strip().count("\n") == 0 and expected in done.stderr
    assert (tmp_path / "probes.json").read_text() == "{}"
