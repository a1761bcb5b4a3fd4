"""Fault injection: a second writer, damaged checkpoints, stop signals, a full disk, a diverging
run. Each test checks that nothing is lost and that the failure is one line."""

import errno
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ROOT, tiny_config

from icl_regression import load_run
from icl_regression.checkpoints import Checkpointer, NoUsableCheckpoint
from icl_regression.config import OptimConfig
from icl_regression.storage import RunDirLocked, hold_run_lock, release_run_lock, run_lock
from icl_regression.storage import read_jsonl as read_metrics
from icl_regression.train.loop import train_and_evaluate
from icl_regression.train.metrics_log import MetricsWriter
from icl_regression.train.task import EXIT_DIVERGED, EXIT_WRITE_FAILED, train_task

CFG = tiny_config(steps=20, log_every=5, ckpt_every=5, keep_checkpoints=4)
CLI_TINY = ["model.n_layer=2", "model.d_model=16", "task.d=3", "task.n_points=6",
            "batch_size=16", "progress=false"]
TRAIN = [sys.executable, "-m", "icl_regression.train"]


def _params(run_dir):
    return jax.tree.leaves(jax.device_get(load_run(run_dir).model))


def _assert_same_params(run_dir, expected):
    for a, b in zip(_params(run_dir), expected, strict=True):
        np.testing.assert_array_equal(a, b)  # bitwise on CPU


CACHE_KEYS = {"jax_compilation_cache_dir": "JAX_COMPILATION_CACHE_DIR",
              "jax_persistent_cache_min_compile_time_secs":
                  "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"}


@pytest.fixture(scope="module", autouse=True)
def compile_once(tmp_path_factory):
    """Most trainings here run the same tiny program: JAX's persistent compilation cache
    compiles it once for this module and its subprocesses (the environment it yields);
    a compilation is most of a tiny run's time on a shared CPU."""
    from jax.experimental.compilation_cache import compilation_cache

    values = {"jax_compilation_cache_dir": str(tmp_path_factory.mktemp("jax_cache")),
              "jax_persistent_cache_min_compile_time_secs": 0}
    before = {key: getattr(jax.config, key) for key in values}
    for key, value in values.items():
        jax.config.update(key, value)
    compilation_cache.reset_cache()
    yield {**os.environ, **{CACHE_KEYS[key]: str(value) for key, value in values.items()}}
    for key, value in before.items():
        jax.config.update(key, value)
    compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, compile_once):
    """A finished run (checkpoints at 5, 10, 15, 20) and its final parameters."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    train_and_evaluate(CFG, run_dir)
    return run_dir, _params(run_dir)


@pytest.fixture
def finished(uninterrupted, tmp_path):
    """A copy of the finished run to damage."""
    shutil.copytree(uninterrupted[0], tmp_path / "run")
    return tmp_path / "run"


def _snapshot(run_dir):
    return {p: (os.path.getsize(p), os.path.getmtime(p))
            for p in glob.glob(f"{run_dir}/**", recursive=True, include_hidden=True)}


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "HYDRA_FULL_ERROR" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _hold_in_subprocess(run_dir):
    """Another process holding the run directory's lock, as a running training would."""
    code = ("import sys, time; from icl_regression.storage import hold_run_lock; "
            "hold_run_lock(sys.argv[1]); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


# -- one writer per run directory -------------------------------------------------------------

def test_second_process_on_a_run_dir_stops_at_once_and_writes_nothing(finished, compile_once):
    holder = _hold_in_subprocess(finished)
    try:
        before = _snapshot(finished)
        out = subprocess.run([*TRAIN, *CLI_TINY, "steps=20", "log_every=5", "ckpt_every=5",
                              "keep_checkpoints=4", f"hydra.run.dir={finished}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, env=compile_once)
        assert out.returncode == 2, out.stderr
        (line,) = _error_lines(out.stderr)
        assert str(finished) in line and f"pid {holder.pid}" in line and "host " in line
        assert _snapshot(finished) == before  # no .hydra/, metrics, checkpoints or config
    finally:
        holder.kill()
        holder.wait()


def test_a_locked_run_dir_stops_the_task_too(finished, capfd):
    """The task takes the lock itself (multirun jobs, multi-host process 0, notebooks)."""
    holder = _hold_in_subprocess(finished)
    try:
        before = _snapshot(finished)
        with pytest.raises(SystemExit) as exit_:
            train_task(CFG, finished)
        assert exit_.value.code == 2
        (line,) = _error_lines(capfd.readouterr().err)
        assert f"pid {holder.pid}" in line
        assert _snapshot(finished) == before
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_exclusive_reentrant_and_dies_with_its_holder(tmp_path):
    holder = _hold_in_subprocess(tmp_path)
    with pytest.raises(RunDirLocked, match=f"pid {holder.pid}"):
        hold_run_lock(tmp_path, wait_s=0.5)
    holder.send_signal(signal.SIGKILL)  # kill -9 leaves no stale lock: the kernel drops it
    holder.wait()
    with run_lock(tmp_path), run_lock(tmp_path):  # re-entrant within a process
        assert f"pid {os.getpid()}" in (tmp_path / ".run.lock").read_text()
    hold_run_lock(tmp_path)
    release_run_lock(tmp_path)


# -- damaged checkpoints ----------------------------------------------------------------------

def _empty_data_file(step_dir):
    (data,) = glob.glob(f"{step_dir}/default/d/*")
    open(data, "w").close()


def _delete_data_file(step_dir):
    (data,) = glob.glob(f"{step_dir}/default/d/*")
    os.remove(data)


def _truncate_metadata(step_dir):
    meta = step_dir / "default" / "_METADATA"
    meta.write_text(meta.read_text()[:100])


DAMAGE = {"emptied data file": _empty_data_file, "deleted data file": _delete_data_file,
          "truncated metadata": _truncate_metadata}


def _abstract_state():
    from flax import nnx

    from icl_regression.models import build_model
    from icl_regression.train.loop import make_optimizer

    _, params = nnx.split(build_model(CFG.model, CFG.task, CFG.seed))
    return {"params": params, "opt_state": make_optimizer(CFG)[0].init(params)}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_each_damage_is_caught_and_the_previous_checkpoint_restored(
        damage, finished, uninterrupted, capfd):
    pristine = Checkpointer(uninterrupted[0] / "checkpoints").restore(_abstract_state(), 15)
    DAMAGE[damage](finished / "checkpoints" / "20")
    ckpt = Checkpointer(finished / "checkpoints")
    step, state = ckpt.restore_newest(_abstract_state())
    assert step == 15 and ckpt.latest_step() == 15
    ckpt.close()
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(pristine), strict=True):
        np.testing.assert_array_equal(a, b)
    (warning,) = capfd.readouterr().err.strip().splitlines()  # one line, no traceback
    assert warning.startswith(f"warning: checkpoint {finished / 'checkpoints' / '20'} does not "
                              "restore") and warning.endswith("damaged-20")
    assert any((finished / "checkpoints" / "damaged-20").rglob("*"))  # moved, never deleted


def test_damaged_newest_checkpoint_falls_back_and_the_run_ends_equal(
        finished, uninterrupted, capfd):
    _empty_data_file(finished / "checkpoints" / "20")
    assert train_and_evaluate(CFG, finished)["step"] == 20
    assert "checkpoints/20 does not restore" in capfd.readouterr().err
    assert [r["step"] for r in read_metrics(finished / "metrics.jsonl")] == [5, 10, 15, 20]
    _assert_same_params(finished, uninterrupted[1])


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_every_damage_end_to_end(damage, finished, uninterrupted):
    DAMAGE[damage](finished / "checkpoints" / "20")
    assert train_and_evaluate(CFG, finished)["step"] == 20
    _assert_same_params(finished, uninterrupted[1])


def test_two_damaged_checkpoints_fall_back_two_steps(finished, uninterrupted):
    _empty_data_file(finished / "checkpoints" / "20")
    _truncate_metadata(finished / "checkpoints" / "15")
    train_and_evaluate(CFG, finished)
    assert {"damaged-15", "damaged-20"} <= {p.name for p in (finished / "checkpoints").iterdir()}
    _assert_same_params(finished, uninterrupted[1])


def test_no_checkpoint_restores_is_one_line_and_exit_2(finished, capfd):
    metrics = (finished / "metrics.jsonl").read_text()
    for step in (5, 10, 15, 20):
        _empty_data_file(finished / "checkpoints" / str(step))
    with pytest.raises(SystemExit) as exit_:
        train_task(CFG, finished)
    assert exit_.value.code == 2
    (line,) = _error_lines(capfd.readouterr().err)
    assert line.startswith(f"error: no checkpoint in {finished / 'checkpoints'} restores")
    kept = sorted(p.name for p in (finished / "checkpoints").iterdir())
    assert kept == ["damaged-10", "damaged-15", "damaged-20", "damaged-5"]
    assert (finished / "metrics.jsonl").read_text() == metrics


def test_load_run_skips_a_damaged_checkpoint_without_moving_it(finished, capfd):
    _delete_data_file(finished / "checkpoints" / "20")
    run = load_run(finished)
    assert run.step == 15
    assert "checkpoints/20 does not restore" in capfd.readouterr().err
    assert (finished / "checkpoints" / "20").is_dir()  # read-only users move nothing
    for step in (5, 10, 15):
        _empty_data_file(finished / "checkpoints" / str(step))
    with pytest.raises(NoUsableCheckpoint, match="no checkpoint in"):
        load_run(finished)


# -- stop signals -----------------------------------------------------------------------------

def test_sigusr1_stops_after_the_chunk_checkpoints_then_hands_over(
        tmp_path, uninterrupted, monkeypatch):
    write = MetricsWriter.write

    def write_then_signal(self, record):  # the signal lands while step 5 is being logged
        write(self, record)
        if record["step"] == 5:
            os.kill(os.getpid(), signal.SIGUSR1)

    handed_over = []  # what submitit's handler would see: requeue once the checkpoint exists
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: handed_over.append(
        (signum, sorted(p.name for p in (tmp_path / "checkpoints").iterdir()))))
    monkeypatch.setattr(MetricsWriter, "write", write_then_signal)
    try:
        summary = train_and_evaluate(tiny_config(steps=20, log_every=5, ckpt_every=10), tmp_path)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert summary["step"] == 5 and summary["stopped_by"] == "SIGUSR1"
    assert handed_over == [(signal.SIGUSR1, ["5"])]
    monkeypatch.undo()
    assert train_and_evaluate(CFG, tmp_path)["step"] == 20
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [5, 10, 15, 20]
    _assert_same_params(tmp_path, uninterrupted[1])


@pytest.mark.slow
def test_sigterm_mid_run_exits_0_with_a_checkpoint_and_resume_is_exact(tmp_path, compile_once):
    cmd = [*TRAIN, *CLI_TINY, "steps=1000", "log_every=10", "ckpt_every=500"]
    stopped, straight = tmp_path / "stopped", tmp_path / "straight"
    proc = subprocess.Popen([*cmd, f"hydra.run.dir={stopped}"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, env=compile_once)
    deadline = time.time() + 180
    while time.time() < deadline and not (stopped / "metrics.jsonl").exists():
        time.sleep(0.1)  # the first chunk is done
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0 and time.time() - sent < 30, stderr
    step = read_metrics(stopped / "metrics.jsonl")[-1]["step"]
    assert step < 1000 and (stopped / "checkpoints" / str(step)).is_dir()
    assert f"SIGTERM: stopped at step {step}" in stderr
    for run_dir in (stopped, straight):
        subprocess.run([*cmd, f"hydra.run.dir={run_dir}"], cwd=ROOT, check=True,
                       capture_output=True, timeout=300, env=compile_once)
    _assert_same_params(stopped, _params(straight))
    assert [r["step"] for r in read_metrics(stopped / "metrics.jsonl")] == list(
        range(10, 1001, 10))


# -- a full disk, a diverging run -------------------------------------------------------------

def test_enospc_during_a_checkpoint_save_keeps_the_previous_one(
        tmp_path, uninterrupted, monkeypatch, capfd):
    from orbax.checkpoint._src.path import async_path

    write_text = async_path.write_text

    async def disk_full_at_step_15(path, text):
        if "15.orbax-checkpoint-tmp" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return await write_text(path, text)

    monkeypatch.setattr(async_path, "write_text", disk_full_at_step_15)
    with pytest.raises(SystemExit) as exit_:
        train_task(CFG, tmp_path)
    assert exit_.value.code == EXIT_WRITE_FAILED
    (line,) = _error_lines(capfd.readouterr().err)
    assert "step 15" in line and "No space left on device" in line and "(step 10)" in line
    monkeypatch.undo()
    assert load_run(tmp_path).step == 10  # the previous checkpoint is usable
    assert train_and_evaluate(CFG, tmp_path)["step"] == 20
    _assert_same_params(tmp_path, uninterrupted[1])


@pytest.mark.slow  # a program of its own to compile (lr); the guard itself: test_train.py
def test_nan_guard_is_one_line_and_exit_3(tmp_path, capfd):
    cfg = tiny_config(steps=40, log_every=5, ckpt_every=10,
                      optim=OptimConfig(lr=1e12, warmup_steps=0, grad_clip=0.0))
    with pytest.raises(SystemExit) as exit_:
        train_task(cfg, tmp_path)
    assert exit_.value.code == EXIT_DIVERGED
    (line,) = _error_lines(capfd.readouterr().err)
    assert "non-finite loss at step" in line and "optim.lr" in line
    leaves = jax.tree.leaves(jax.device_get(load_run(tmp_path).model))
    assert all(np.isfinite(leaf).all() for leaf in leaves)


@pytest.mark.slow
def test_nan_guard_from_the_command_line(tmp_path, compile_once):
    out = subprocess.run([*TRAIN, *CLI_TINY, "steps=200", "log_every=10", "optim.lr=1e6",
                          "optim.grad_clip=0", f"hydra.run.dir={tmp_path}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=compile_once)
    assert out.returncode == EXIT_DIVERGED, out.stderr
    (line,) = _error_lines(out.stderr)
    assert "non-finite loss at step" in line and str(tmp_path / "checkpoints") in line


@pytest.mark.slow
def test_two_trainings_on_one_run_dir(tmp_path, compile_once):
    cmd = [*TRAIN, *CLI_TINY, f"steps={10**7}", "log_every=10", "ckpt_every=500",
           f"hydra.run.dir={tmp_path}"]
    first = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=compile_once)
    deadline = time.time() + 180
    while time.time() < deadline and not (tmp_path / "metrics.jsonl").exists():
        time.sleep(0.1)
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=compile_once)
    assert first.poll() is None, "the first run must still be running"
    assert second.returncode == 2 and f"pid {first.pid}" in second.stderr, second.stderr
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0 and "Unable to find the step" not in stderr
    steps = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == list(range(10, steps[-1] + 1, 10))  # every step once
