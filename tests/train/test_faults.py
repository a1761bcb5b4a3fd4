"""Fault injection, part 1: a second writer on a run directory, damaged checkpoints. Each
test checks that nothing is lost and that the failure is one line."""

import glob
import os
import signal
import subprocess

import jax
import numpy as np
import pytest
from conftest import ROOT
from faults_support import (
    CFG,
    CLI_TINY,
    TRAIN,
    assert_same_params,
    compile_once,
    error_lines,
    finished,
    hold_in_subprocess,
    snapshot,
    uninterrupted,
)

from icl_regression import load_run
from icl_regression.checkpoints import Checkpointer, NoUsableCheckpoint
from icl_regression.storage import RunDirLocked, hold_run_lock, release_run_lock, run_lock
from icl_regression.storage import read_jsonl as read_metrics
from icl_regression.train.app import train_command
from icl_regression.train.loop import train_run

FIXTURES = (compile_once, uninterrupted, finished)  # pytest finds them by name in this module


# -- one writer per run directory -------------------------------------------------------------

def test_second_process_on_a_run_dir_stops_at_once_and_writes_nothing(finished, compile_once):
    holder = hold_in_subprocess(finished)
    try:
        before = snapshot(finished)
        out = subprocess.run([*TRAIN, *CLI_TINY, "steps=20", "log_every=5", "ckpt_every=5",
                              "keep_checkpoints=4", f"hydra.run.dir={finished}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, env=compile_once)
        assert out.returncode == 2, out.stderr
        (line,) = error_lines(out.stderr)
        assert str(finished) in line and f"pid {holder.pid}" in line and "host " in line
        assert snapshot(finished) == before  # no .hydra/, metrics, checkpoints or config
    finally:
        holder.kill()
        holder.wait()


def test_a_locked_run_dir_stops_the_task_too(finished, capfd):
    """The task takes the lock itself (multirun jobs, multi-host process 0, notebooks)."""
    holder = hold_in_subprocess(finished)
    try:
        before = snapshot(finished)
        with pytest.raises(SystemExit) as exit_:
            train_command(CFG, finished)
        assert exit_.value.code == 2
        (line,) = error_lines(capfd.readouterr().err)
        assert f"pid {holder.pid}" in line
        assert snapshot(finished) == before
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_exclusive_reentrant_and_dies_with_its_holder(tmp_path):
    holder = hold_in_subprocess(tmp_path)
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
    assert train_run(CFG, finished)["step"] == 20
    assert "checkpoints/20 does not restore" in capfd.readouterr().err
    assert [r["step"] for r in read_metrics(finished / "metrics.jsonl")] == [5, 10, 15, 20]
    assert_same_params(finished, uninterrupted[1])


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_every_damage_end_to_end(damage, finished, uninterrupted):
    DAMAGE[damage](finished / "checkpoints" / "20")
    assert train_run(CFG, finished)["step"] == 20
    assert_same_params(finished, uninterrupted[1])


def test_two_damaged_checkpoints_fall_back_two_steps(finished, uninterrupted):
    _empty_data_file(finished / "checkpoints" / "20")
    _truncate_metadata(finished / "checkpoints" / "15")
    train_run(CFG, finished)
    assert {"damaged-15", "damaged-20"} <= {p.name for p in (finished / "checkpoints").iterdir()}
    assert_same_params(finished, uninterrupted[1])


def test_no_checkpoint_restores_is_one_line_and_exit_2(finished, capfd):
    metrics = (finished / "metrics.jsonl").read_text()
    for step in (5, 10, 15, 20):
        _empty_data_file(finished / "checkpoints" / str(step))
    with pytest.raises(SystemExit) as exit_:
        train_command(CFG, finished)
    assert exit_.value.code == 2
    (line,) = error_lines(capfd.readouterr().err)
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
