"""Experiments: demonstration manipulations are exact, Huber is the Huber minimiser, presets
expand, and every experiment runs end to end on tiny trained runs (in-process and via the CLI)."""

import dataclasses
import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, compose, sweep_of, tiny_config

from icl_regression.baselines import huber
from icl_regression.cli import compose_train
from icl_regression.config import ConfigError, TaskConfig, to_dataclass, validate
from icl_regression.data import context, tasks
from icl_regression.experiments.app import experiments_config, run_experiment
from icl_regression.experiments.registry import EXPERIMENTS, experiment_names
from icl_regression.train.loop import train_run

TASK = TaskConfig(d=3, n_points=10)


def _prompts(batch=400, task=TASK, seed=0):
    return tasks.sample_prompts(jax.random.key(seed), task, batch)


@pytest.mark.parametrize("mode", ["noise", "other_w"])
def test_corrupted_fraction_is_exact_and_only_in_the_context(mode):
    xs, ys, ws = _prompts()
    k = 7
    bad, mask = context.corrupt_context(jax.random.key(1), xs, ys, TASK, 0.3, mode, k)
    bad, mask, ys, xs = map(np.asarray, (bad, mask, ys, xs))
    assert (mask.sum(1) == round(0.3 * k)).all()  # exactly 2 of the first 7, every prompt
    assert not mask[:, k:].any()
    np.testing.assert_array_equal(bad[~mask], ys[~mask])
    assert (bad[mask] != ys[mask]).all()
    # Each context position is chosen equally often (2/7 of the prompts).
    np.testing.assert_allclose(mask[:, :k].mean(0), 2 / 7, atol=0.08)
    if mode == "noise":  # N(0, E y²): unit variance for the default task
        assert abs(np.var(bad[mask]) - tasks.expected_y2(TASK)) < 0.2
    else:  # one other linear task per prompt: its 4 corrupted labels in d=3 fit one w' exactly
        bad4, mask4 = map(np.asarray, context.corrupt_context(
            jax.random.key(2), xs, ys, TASK, 0.5, mode, 8))
        for b in range(20):
            rows = np.flatnonzero(mask4[b])
            x_rows = xs[b, rows].astype(np.float64)
            w_other = np.linalg.lstsq(x_rows, bad4[b, rows], rcond=None)[0]
            np.testing.assert_allclose(x_rows @ w_other, bad4[b, rows], atol=1e-4)
            assert np.linalg.norm(w_other - np.asarray(ws[b])) > 1e-3


def test_training_time_corruption_and_unchanged_clean_sampling():
    task = dataclasses.replace(TASK, corrupt_fraction=0.3)
    xs, ys, ws = _prompts(task=task)
    clean_xs, clean_ys, clean_ws = _prompts()
    np.testing.assert_array_equal(xs, clean_xs)  # x and w draws are untouched by corruption
    np.testing.assert_array_equal(ws, clean_ws)
    exact = np.einsum("bnd,bd->bn", np.asarray(xs, np.float64), np.asarray(ws, np.float64))
    np.testing.assert_allclose(clean_ys, exact, atol=1e-5)
    changed = np.abs(np.asarray(ys) - exact) > 1e-4
    assert (changed.sum(1) == 3).all()  # round(0.3 · 10) per prompt


@pytest.mark.parametrize("override,key", [("task.corrupt_fraction=1.5", "task.corrupt_fraction"),
                                          ("task.corrupt_mode=flip", "task.corrupt_mode")])
def test_bad_corruption_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        compose_train([override])  # the apps' path: composition errors are ConfigErrors too
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


def test_permuted_prompt_holds_the_same_pairs():
    xs, ys, _ = map(np.asarray, _prompts(batch=300))
    k = 6
    pxs, pys = map(np.asarray, context.permute_context(jax.random.key(3), xs, ys, k))
    np.testing.assert_array_equal(pxs[:, k:], xs[:, k:])
    np.testing.assert_array_equal(pys[:, k:], ys[:, k:])
    for b in range(len(xs)):
        original = sorted(map(tuple, np.concatenate([xs[b, :k], ys[b, :k, None]], 1)))
        permuted = sorted(map(tuple, np.concatenate([pxs[b, :k], pys[b, :k, None]], 1)))
        assert original == permuted
    # Uniform orders: where the first pair lands is uniform over the k slots.
    landing = np.argmax((pys[:, :k] == ys[:, :1]), axis=1)
    counts = np.bincount(landing, minlength=k)
    assert counts.min() > 0.5 * len(xs) / k and counts.max() < 1.5 * len(xs) / k


@pytest.mark.parametrize("k", [1, 4, 9])
def test_nearest_selection_matches_numpy_brute_force(k):
    xs, ys, _ = _prompts(batch=64, task=dataclasses.replace(TASK, n_points=33))
    pool_xs, pool_ys, query = xs[:, :32], ys[:, :32], xs[:, 32]
    sel_xs, sel_ys, chosen = map(np.asarray, context.select_demonstrations(
        jax.random.key(0), pool_xs, pool_ys, query, k, 10, "nearest"))
    p64, q64 = np.asarray(pool_xs, np.float64), np.asarray(query, np.float64)
    dist = ((p64 - q64[:, None]) ** 2).sum(-1)  # (B, N)
    assert (chosen[:, k:] == -1).all()
    chosen = chosen[:, :k]
    for b in range(len(dist)):
        assert set(chosen[b]) == set(np.argsort(dist[b], kind="stable")[:k])
        assert np.all(np.diff(dist[b, chosen[b]]) <= 0)  # farthest first, the nearest last
    np.testing.assert_array_equal(sel_xs[:, :k], np.take_along_axis(
        np.asarray(pool_xs), chosen[..., None], 1))
    np.testing.assert_array_equal(sel_ys[:, :k], np.take_along_axis(np.asarray(pool_ys), chosen,
                                                                    1))
    np.testing.assert_array_equal(sel_xs[:, k], query)
    assert not sel_xs[:, k + 1:].any() and not sel_ys[:, k:].any()  # query label and padding


def test_random_selection_is_distinct_and_uniform():
    xs, ys, _ = _prompts(batch=2000, task=dataclasses.replace(TASK, n_points=9))
    _, _, chosen = context.select_demonstrations(jax.random.key(5), xs[:, :8], ys[:, :8],
                                               xs[:, 8], 3, 10, "random")
    chosen = np.asarray(chosen)[:, :3]
    assert all(len(set(row)) == 3 for row in chosen)
    np.testing.assert_allclose(np.bincount(chosen.ravel(), minlength=8) / chosen.size, 1 / 8,
                               atol=0.02)


def _numpy_huber(x, y, delta, lam, iters=20000):
    """Independent float64 classic IRLS (weights min(1, δ/|r|)) for one prefix (k, d), (k,)."""
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        r = y - x @ w
        c = np.where(np.abs(r) <= delta, 1.0, delta / np.maximum(np.abs(r), 1e-300))
        new = np.linalg.solve(x.T @ (c[:, None] * x) + lam * np.eye(x.shape[1]), x.T @ (c * y))
        if np.abs(new - w).max() < 1e-13:
            return new
        w = new
    raise AssertionError("the reference IRLS did not converge")


def test_huber_matches_numpy_irls_stationarity_and_the_ridge_limit():
    xs, ys, _ = _prompts(batch=8)
    bad, _ = context.corrupt_context(jax.random.key(1), xs, ys, TASK, 0.3, "noise", 10)
    delta, lam = 0.1, 1e-3
    ws = np.asarray(huber.huber_weights(xs, bad, delta, lam), np.float64)  # (B, n, d)
    x64, y64 = np.asarray(xs, np.float64), np.asarray(bad, np.float64)
    for b in range(8):
        np.testing.assert_array_equal(ws[b, 0], 0.0)
        for i in (2, 6, 10 - 1):
            ref = _numpy_huber(x64[b, :i], y64[b, :i], delta, lam)
            np.testing.assert_allclose(ws[b, i], ref, atol=1e-3)
            r = y64[b, :i] - x64[b, :i] @ ws[b, i]  # the minimiser's first-order condition
            grad = x64[b, :i].T @ np.clip(r, -delta, delta) - lam * ws[b, i]
            assert np.abs(grad).max() < 1e-3
    ridge = np.asarray(huber.huber_weights(xs, bad, 1e6, lam, iters=1))
    x, y = x64[0, :5], y64[0, :5]
    np.testing.assert_allclose(ridge[0, 5], np.linalg.solve(x.T @ x + lam * np.eye(3), x.T @ y),
                               atol=1e-4)


def test_huber_shrugs_off_outliers_that_move_least_squares():
    xs, ys, _ = _prompts(batch=200)
    bad, _ = context.corrupt_context(jax.random.key(1), xs, ys, TASK, 0.2, "noise", 9)
    huber_preds = np.asarray(huber.huber_predict_last(xs, bad))  # fitted on pairs 0..8
    x64, y64 = np.asarray(xs, np.float64), np.asarray(bad, np.float64)
    ols = [x[9] @ np.linalg.lstsq(x[:9], y[:9], rcond=None)[0]
           for x, y in zip(x64, y64, strict=True)]
    target = np.asarray(ys)[:, 9]
    assert np.mean((huber_preds - target) ** 2) < 0.5 * np.mean((ols - target) ** 2)


NEW_PRESETS = {"task_diversity": ("task.pool_size", 12), "task_diversity_cpu":
               ("task.pool_size", 6), "scale": ("model.n_layer", 5), "scale_cpu":
               ("model.n_layer", 2), "prior_override": ("model.n_layer", 4),
               "prior_override_cpu": ("model.n_layer", 3), "corrupted_demos":
               ("task.corrupt_fraction", 5), "corrupted_demos_cpu": ("task.corrupt_fraction", 3),
               "long_context": ("model.positions", 2), "long_context_cpu": ("model.positions", 2)}


@pytest.mark.parametrize("preset", sorted(NEW_PRESETS))
def test_experiment_sweeps_expand_to_valid_jobs(preset):
    key, jobs = NEW_PRESETS[preset]
    mode, values = sweep_of(preset, key)
    assert mode == "MULTIRUN"
    assert len(values) == jobs
    validate(to_dataclass(compose([f"preset={preset}", f"{key}={values[-1]}"])))


@pytest.mark.parametrize("values,key", [({"name": "bogus", "runs": "x"}, "name"),
                                        ({"name": "scale", "runs": []}, "runs"),
                                        ({"name": "scale", "runs": "x",
                                          "corrupted_demos": {"modes": ["flip"]}},
                                         "corrupted_demos.modes"),
                                        ({"name": "scale", "runs": "x", "colour": 1}, "colour")])
def test_bad_experiment_options_name_the_key(values, key):
    with pytest.raises(ConfigError) as err:
        experiments_config(values)
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Two runs: a 20-step run with a task pool, μ ≠ 0, corruption and no positions (it serves
    every experiment), and a plain run with learned positions that stop at its 6 points. The
    plain run reuses the first one's trained weights (same parameter shapes) under its own
    config.json: one training compilation instead of two."""
    root = tmp_path_factory.mktemp("runs")
    rich = tiny_config(keep_period=10, task=dataclasses.replace(
        tiny_config().task, pool_size=4, w_mean=1.0, corrupt_fraction=0.2, noise_std=0.1),
        model=dataclasses.replace(tiny_config().model, positions="none"))
    train_run(rich, root / "a_rich")
    shutil.copytree(root / "a_rich" / "checkpoints", root / "b_plain" / "checkpoints")
    (root / "b_plain" / "config.json").write_text(json.dumps(dataclasses.asdict(tiny_config(
        keep_period=10))))
    return root


def _options(name, runs, out):
    return experiments_config({"name": name, "runs": runs, "out": str(out), "n_prompts": 64,
                               "corrupted_demos": {"fractions": [0.0, 0.3, 0.5]},
                               "order_sensitivity": {"prompts": 16, "permutations": 4},
                               "demo_selection": {"pool_points": 12},
                               "architectures": {"cost_points": 32, "cost_prompts": 2}})


ACROSS_RUNS = ("task_diversity", "scale", "long_context")  # the others read the rich run only


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiment_runs_end_to_end(name, tiny_runs, tmp_path):
    runs = str(tiny_runs if name in ACROSS_RUNS else tiny_runs / "a_rich")
    report = run_experiment(_options(name, runs, tmp_path), log=lambda _: None)
    labels = {r["label"] for r in report.records}
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
    stored = json.loads((tiny_runs / "a_rich" / "experiments" / f"{name}.json").read_text())
    assert stored["step"] == 20 and stored["options"]["n_prompts"] == 64
    results = stored["results"]
    if name == "long_context":  # learned positions of the plain run stop at its 6 points
        assert list(report.skipped) == [str(tiny_runs / "b_plain")]
        assert "model.max_len" in report.skipped[str(tiny_runs / "b_plain")]
        assert results["n_points"] == 18 and len(results["error"]["model"]["mean"]) == 18
    else:
        assert len(labels) == (2 if name in ACROSS_RUNS else 1) and not report.skipped
    if name == "order_sensitivity":
        assert results["steps"] == [10, 20]
        assert max(results["variance"]["ols"]) < 1e-6  # OLS is order-invariant
        assert min(results["variance"]["model"]["20"][1:]) > 1e-6  # the model is not
    if name == "corrupted_demos":
        assert results["corrupted_counts"] == [0, 2, 2]  # round(f · 5), half to even
        assert results["train_corrupt_fraction"] == 0.2
    if name == "task_diversity":
        assert set(results["settings"]) == {"fresh", "pool"}
        assert "dmmse" in results["settings"]["pool"]["spd"]
    if name == "prior_override":  # x·μ scores E(x·(w − μ))²: ‖2μ‖² + τ² on flipped tasks
        flipped = results["settings"]["flipped"]["error"]["prior_mean"]["mean"]
        assert abs(np.mean(flipped) - 5 / 2) < 0.4  # (4 + 1) / (1 + 1 + σ²) ≈ 2.5
    if name == "architectures":  # the last layer's lens is the model's prediction
        np.testing.assert_allclose(results["layers"][-1], results["error"]["model"]["mean"],
                                   rtol=1e-4, atol=1e-7)
        assert len(results["layers"]) == results["n_layers"] + 1 == 3
        assert results["extrapolation"]["n_points"] == 24  # no positions: 4 × 6 points
        assert results["cost"]["n_points"] == 32 and results["cost"]["forward_s"] > 0
        assert results["loops"] is None and set(results["error"]) == {"model", "ols",
                                                                       "averaging"}
    if name not in ("task_diversity", "scale", "architectures"):
        assert (tiny_runs / "a_rich" / "plots" / f"experiment_{name}.png").exists()


def test_stored_numbers_are_reused_unless_the_options_change(tiny_runs, tmp_path):
    runs = str(tiny_runs / "a_rich")
    stored = tiny_runs / "a_rich" / "experiments" / "scale.json"
    run_experiment(_options("scale", runs, tmp_path), log=lambda _: None)
    first = stored.read_text()
    run_experiment(_options("scale", runs, tmp_path), log=lambda _: None)
    assert stored.read_text() == first  # same options and step: not recomputed
    changed = dataclasses.replace(_options("scale", runs, tmp_path), options=dataclasses.replace(
        _options("scale", runs, tmp_path).options, seed=1))
    run_experiment(changed, log=lambda _: None)
    recomputed = json.loads(stored.read_text())
    assert recomputed["options"]["seed"] == 1
    assert recomputed["results"]["error"] != json.loads(first)["results"]["error"]


def test_cli_end_to_end_and_bad_name(tiny_runs, tmp_path):
    cmd = [sys.executable, "-m", "icl_regression.experiments", "name=demo_selection",
           f"runs={tiny_runs / 'a_rich'}", f"out={tmp_path}", "n_prompts=64",
           "demo_selection.pool_points=12"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
    assert json.loads((tmp_path / "demo_selection.json").read_text())[0]["results"]["k"] == \
        list(range(1, 6))
    assert (tmp_path / "demo_selection.png").stat().st_size > 1000
    bad = subprocess.run([*cmd[:3], "name=nope", f"runs={tiny_runs}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "name='nope' is not allowed" in bad.stderr
    unnamed = subprocess.run(cmd[:3], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert unnamed.returncode == 2 and unnamed.stderr.startswith("error: name=??? is not allowed")


def test_the_built_in_stream_ids_are_the_ones_the_committed_numbers_were_drawn_with():
    """Pinned ids, not membership: a new experiment adds a row without touching this test."""
    pinned = {"task_diversity": 0, "scale": 1, "prior_override": 2, "corrupted_demos": 3,
              "order_sensitivity": 4, "demo_selection": 5, "long_context": 6}
    experiment_names()
    assert {name: EXPERIMENTS.stream_id(name) for name in pinned} == pinned
