"""Training: loss goes down, presets run, resume is exact, NaNs stop cleanly, runs are safe."""

import dataclasses
import json
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import CONF_DIR, ROOT, compose, tiny_config

from icl_regression import load_run
from icl_regression.config import (
    ConfigError,
    CurriculumConfig,
    OptimConfig,
    TaskConfig,
    to_dataclass,
)
from icl_regression.storage import read_jsonl as read_metrics
from icl_regression.train.curriculum import curriculum_at
from icl_regression.train.loop import (
    NonFiniteLossError,
    check_resumable,
    make_optimizer,
    make_update,
    train_run,
)

PRESETS = sorted(p.stem for p in (CONF_DIR / "preset").glob("*.yaml"))


def test_a_few_dozen_steps_lower_the_loss(tmp_path):
    cfg = tiny_config(steps=60, log_every=10, ckpt_every=60,
                      optim=OptimConfig(lr=3e-3, warmup_steps=5))
    train_run(cfg, tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(10, 61, 10))
    assert records[-1]["loss"] < 0.8 * records[0]["loss"]
    for key in ("lr", "grad_norm", "param_norm", "steps_per_sec", "curriculum_dims"):
        assert np.isfinite(records[-1][key])


# Every preset trains two steps; the default run covers one of each model, encoding and kind of
# task (a tree family, a mixture), the rest run with -m slow (each compiles a new program). Task
# pools and corrupted labels train in the default tier through the experiments' tests, and
# every preset the docs or the claims name is composed and checked there (test_docs_code,
# reproduce/test_claims).
QUICK_PRESETS = {"quickstart", "oswald_lsa", "probe_study_cpu", "decision_tree_cpu", "mixture_cpu"}


@pytest.mark.parametrize("preset", [p if p in QUICK_PRESETS else pytest.param(
    p, marks=pytest.mark.slow) for p in PRESETS])
def test_every_preset_runs_two_debug_steps(preset, tmp_path):
    cfg = to_dataclass(compose([f"preset={preset}", "debug=default"]))
    summary = train_run(cfg, tmp_path)
    assert summary["step"] == 2
    run = load_run(tmp_path)
    xs, ys, _ = run.sample(jax.random.key(0), 3)
    assert run.predict(xs, ys).shape == ys.shape


def test_load_run_predict_and_sample(tmp_path):
    cfg = tiny_config(steps=10, log_every=5, ckpt_every=5)
    train_run(cfg, tmp_path)
    run = load_run(tmp_path)
    assert run.step == 10
    xs, ys, ws = run.sample(jax.random.key(1), 5)
    assert xs.shape == (5, 6, 3) and ys.shape == (5, 6) and ws.shape == (5, 3)
    preds = run.predict(xs, ys)
    assert preds.shape == (5, 6) and np.isfinite(np.asarray(preds)).all()
    assert run.x_positions.tolist() == list(range(6))
    assert not np.allclose(run.untrained().predict(xs, ys), preds)


def _params(run_dir):
    return jax.tree.leaves(jax.device_get(load_run(run_dir).model))


@pytest.mark.slow  # minutes of subprocess training; CI runs the slow tier too
def test_sigkill_and_resume_equals_uninterrupted_run(tmp_path):
    overrides = ["model.n_layer=2", "model.d_model=16", "task.d=3", "task.n_points=6",
                 "batch_size=16", "steps=400", "log_every=10", "ckpt_every=10",
                 "progress=false"]
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    cmd = [sys.executable, "-m", "icl_regression.train", *overrides]
    proc = subprocess.Popen([*cmd, f"hydra.run.dir={killed}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a checkpoint exists, mid-training
        ckpts = killed / "checkpoints"
        if ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir()):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = read_metrics(killed / "metrics.jsonl")
    assert stored and stored[-1]["step"] < 400, "the run must be killed mid-way"
    for run_dir in (killed, straight):
        subprocess.run([*cmd, f"hydra.run.dir={run_dir}"], cwd=ROOT, check=True,
                       capture_output=True, timeout=300)
    for a, b in zip(_params(killed), _params(straight), strict=True):
        np.testing.assert_array_equal(a, b)  # bitwise on CPU
    steps = [r["step"] for r in read_metrics(killed / "metrics.jsonl")]
    assert steps == list(range(10, 401, 10))  # no duplicated log lines after resume


def test_resume_with_a_different_config_is_refused(tmp_path):
    train_run(tiny_config(steps=10, log_every=5, ckpt_every=5), tmp_path)
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(ConfigError, match="model.d_model"):
        train_run(tiny_config(model=dataclasses.replace(
            tiny_config().model, d_model=32)), tmp_path)
    assert (tmp_path / "config.json").read_text() == before
    summary = train_run(tiny_config(steps=20, log_every=5, ckpt_every=5), tmp_path)
    assert summary["step"] == 20  # more steps is a legitimate resume


def test_resume_reads_keys_newer_than_the_run_as_their_defaults(tmp_path):
    """A run stored before a schema key existed resumes when the key is at its default, and
    is refused when it is not; engine-only keys (model.remat) may change on resume."""
    train_run(tiny_config(steps=10, log_every=5, ckpt_every=5), tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    del stored["task"]["hidden_width"], stored["model"]["remat"]  # as an older version wrote it
    (tmp_path / "config.json").write_text(json.dumps(stored))
    check_resumable(tiny_config(), tmp_path)
    check_resumable(tiny_config(model=dataclasses.replace(tiny_config().model, remat="none")),
                    tmp_path)
    with pytest.raises(ConfigError, match="task.hidden_width=7"):
        check_resumable(tiny_config(task=dataclasses.replace(tiny_config().task,
                                                             hidden_width=7)), tmp_path)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tiny_config(steps=40, log_every=5, ckpt_every=10,
                      optim=OptimConfig(lr=1e12, warmup_steps=0, grad_clip=0.0))
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step"):
        train_run(cfg, tmp_path)
    run = load_run(tmp_path)
    leaves = jax.tree.leaves(jax.device_get(run.model))
    assert all(np.isfinite(leaf).all() for leaf in leaves)
    logged = read_metrics(tmp_path / "metrics.jsonl") if (
        tmp_path / "metrics.jsonl").exists() else []
    assert all(np.isfinite(r["loss"]) for r in logged)


def test_curriculum_schedule_and_masking():
    cfg = to_dataclass(compose(["preset=garg_linear"]))
    assert curriculum_at(cfg, 0) == (5, 11)
    dims, points = curriculum_at(cfg, 4000)
    assert (int(dims), int(points)) == (7, 15)
    dims, points = curriculum_at(cfg, 10**6)
    assert (int(dims), int(points)) == (20, 41)


# Points 3 (steps 0-5), 5 (6-11), 7 (12-): three prompt lengths, three compilations.
STAGED = CurriculumConfig(enabled=True, dims_start=3, points_start=3, points_inc=2,
                          points_interval=6, staged_shapes=True)


@pytest.mark.slow  # minutes of subprocess training; CI runs the slow tier too
def test_staged_curriculum_splits_chunks_at_each_stage_and_resumes_exactly(tmp_path):
    cfg = tiny_config(task=TaskConfig(d=3, n_points=7), curriculum=STAGED, steps=16,
                      log_every=4, ckpt_every=4)
    train_run(cfg, tmp_path / "straight")
    records = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    # Chunks end on the log grid and at the stage change at step 6 (12 is on both).
    assert [r["step"] for r in records] == [4, 6, 8, 12, 16]
    assert [r["curriculum_points"] for r in records] == [3, 3, 5, 5, 7]
    train_run(dataclasses.replace(cfg, steps=10), tmp_path / "resumed")
    train_run(cfg, tmp_path / "resumed")  # from step 10, mid-stage
    for a, b in zip(_params(tmp_path / "resumed"), _params(tmp_path / "straight"), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # minutes of subprocess training; CI runs the slow tier too
def test_staged_update_trains_on_prompts_of_the_stage_length():
    """The loss of one staged step at 3 points is the model's MSE on the 3-point batch that
    train_batch draws for that step, not a masked 7-point batch."""
    from flax import nnx

    from icl_regression.data.tasks import train_batch
    from icl_regression.models import build_model
    from icl_regression.train.mesh import DataParallel

    cfg = tiny_config(task=TaskConfig(d=3, n_points=7), curriculum=STAGED)
    model = build_model(cfg.model, cfg.task, cfg.seed)
    graphdef, params = nnx.split(model)
    tx, schedule = make_optimizer(cfg)
    one_device = DataParallel.create(devices=jax.devices()[:1])
    update = make_update(cfg, graphdef, tx, schedule, one_device)
    _, _, metrics = update(params, tx.init(params), 2, 1, 3)
    xs, ys, _ = train_batch(cfg.seed, 2, dataclasses.replace(cfg.task, n_points=3),
                            cfg.batch_size)
    assert xs.shape == (cfg.batch_size, 3, 3)
    preds = np.asarray(model(xs, ys), np.float64)  # (B, 3)
    expected = np.mean((preds - np.asarray(ys, np.float64)) ** 2)
    np.testing.assert_allclose(float(metrics["loss"][0]), expected, rtol=1e-5)
    _, _, masked = update(params, tx.init(params), 2, 1, 7)  # the same step, masked shapes
    assert not np.isclose(float(masked["loss"][0]), expected, rtol=1e-3)


def test_metrics_file_is_json_lines(tmp_path):
    train_run(tiny_config(steps=10, log_every=5, ckpt_every=5), tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(isinstance(json.loads(line), dict) for line in lines)
