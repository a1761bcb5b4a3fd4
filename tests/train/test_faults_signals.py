"""Fault injection, part 2: stop signals, a full disk, a diverging run, two trainings at once.
Each test checks that nothing is lost and that the failure is one line."""

import errno
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ROOT, tiny_config
from faults_support import (
    CFG,
    CLI_TINY,
    TRAIN,
    assert_same_params,
    compile_once,
    error_lines,
    finished,
    params_of,
    uninterrupted,
)

from icl_regression import load_run
from icl_regression.config import OptimConfig
from icl_regression.storage import read_jsonl as read_metrics
from icl_regression.train.app import EXIT_DIVERGED, EXIT_WRITE_FAILED, train_command
from icl_regression.train.loop import train_run
from icl_regression.train.metrics_log import MetricsWriter

FIXTURES = (compile_once, uninterrupted, finished)  # pytest finds them by name in this module


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
        summary = train_run(tiny_config(steps=20, log_every=5, ckpt_every=10), tmp_path)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert summary["step"] == 5 and summary["stopped_by"] == "SIGUSR1"
    assert handed_over == [(signal.SIGUSR1, ["5"])]
    monkeypatch.undo()
    assert train_run(CFG, tmp_path)["step"] == 20
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [5, 10, 15, 20]
    assert_same_params(tmp_path, uninterrupted[1])


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
    assert_same_params(stopped, params_of(straight))
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
        train_command(CFG, tmp_path)
    assert exit_.value.code == EXIT_WRITE_FAILED
    (line,) = error_lines(capfd.readouterr().err)
    assert "step 15" in line and "No space left on device" in line and "(step 10)" in line
    monkeypatch.undo()
    assert load_run(tmp_path).step == 10  # the previous checkpoint is usable
    assert train_run(CFG, tmp_path)["step"] == 20
    assert_same_params(tmp_path, uninterrupted[1])


@pytest.mark.slow  # a program of its own to compile (lr); the guard itself: test_train.py
def test_nan_guard_is_one_line_and_exit_3(tmp_path, capfd):
    cfg = tiny_config(steps=40, log_every=5, ckpt_every=10,
                      optim=OptimConfig(lr=1e12, warmup_steps=0, grad_clip=0.0))
    with pytest.raises(SystemExit) as exit_:
        train_command(cfg, tmp_path)
    assert exit_.value.code == EXIT_DIVERGED
    (line,) = error_lines(capfd.readouterr().err)
    assert "non-finite loss at step" in line and "optim.lr" in line
    leaves = jax.tree.leaves(jax.device_get(load_run(tmp_path).model))
    assert all(np.isfinite(leaf).all() for leaf in leaves)


@pytest.mark.slow
def test_nan_guard_from_the_command_line(tmp_path, compile_once):
    out = subprocess.run([*TRAIN, *CLI_TINY, "steps=200", "log_every=10", "optim.lr=1e6",
                          "optim.grad_clip=0", f"hydra.run.dir={tmp_path}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=compile_once)
    assert out.returncode == EXIT_DIVERGED, out.stderr
    (line,) = error_lines(out.stderr)
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


def test_disk_full_from_the_command_line_is_exactly_one_line(tmp_path, compile_once):
    """The real command: besides the start-up line, exactly the one error line (no traceback
    from Orbax's threads), exit 4, no temporary folder left, the previous checkpoint usable."""
    cmd = [sys.executable, str(ROOT / "tests" / "train" / "disk_full_train.py"), "15", *CLI_TINY,
           "steps=20", "log_every=5", "ckpt_every=5", f"hydra.run.dir={tmp_path}"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=compile_once)
    assert out.returncode == EXIT_WRITE_FAILED, out.stderr
    lines = [line for line in out.stderr.splitlines() if not line.startswith("[icl] gpt:")]
    assert len(lines) == 1 and lines[0].startswith("error: saving the checkpoint of step 15"), (
        out.stderr)
    assert "No space left on device" in lines[0] and "(step 10) is intact" in lines[0]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["10", "5"]
    assert load_run(tmp_path).step == 10  # resuming from it: the in-process test above


def test_a_save_cut_short_earlier_is_removed_at_the_next_start(finished, capfd):
    """What a kill in the middle of a save leaves (Orbax's temporary folder) is removed, with a
    note, by the next trainer: never by a reader, which could be racing a live save."""
    leftover = finished / "checkpoints" / "25.orbax-checkpoint-tmp-1234"
    (leftover / "default").mkdir(parents=True)
    load_run(finished)  # a reader leaves it alone
    assert leftover.is_dir()
    train_run(CFG, finished)
    assert not leftover.exists()
    assert f"note: removed {leftover}" in capfd.readouterr().err
