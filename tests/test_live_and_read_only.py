"""Runs on read-only storage and runs still training: every app that writes next to a run takes
an output directory and then writes nothing into the run (a full listing with sizes and mtimes
is unchanged: root ignores file modes, so the check is on what was written, not on a refusal);
evaluating a run while it trains uses its newest complete checkpoint and neither waits for the
trainer nor disturbs it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, tiny_config

from icl_regression import cli
from icl_regression.evaluate import app as evaluate_app
from icl_regression.experiments import app as experiments_app
from icl_regression.figures import app as figures_app
from icl_regression.integrity import read_json
from icl_regression.probes import app as probes_app
from icl_regression.storage import read_jsonl
from icl_regression.train.loop import train_run

TINY = ["model.n_layer=2", "model.d_model=16", "task.d=3", "task.n_points=6", "batch_size=16",
        "progress=false"]
EVAL = ["n_prompts=16", "settings=[train]", "implicit_prompts=8", "expensive_prompts=8",
        "progress=false"]


def listing(run_dir) -> dict:
    """Every path under the run (folders too) -> (size, mtime in ns, mode)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(run_dir):
        for name in [".", *dirnames, *filenames]:
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            found[path] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return found


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("shared") / "run"
    train_run(tiny_config(steps=10, log_every=5, ckpt_every=5), run_dir)
    return run_dir


def test_every_app_serves_a_read_only_run_through_out_dir(shared_run, tmp_path):
    """The single-run apps write into the out_dir folder the figures and experiments use for
    the run (catalog.output_dir: OUT/<run folder>-<hash>/), so the figures find them there."""
    from icl_regression.analysis.attention import main as attention_main
    from icl_regression.catalog import output_dir

    out = tmp_path / "out"
    side = output_dir(out, shared_run)
    before = listing(shared_run)
    cli.run_app(evaluate_app.APP, [f"run_dir={shared_run}", f"out_dir={side}", *EVAL])
    cli.run_app(probes_app.APP, [f"run_dir={shared_run}", f"out_dir={side}", "probes=[linear]",
                                 "n_prompts=50", "targets=[w]", "progress=false"])
    attention_main([f"run_dir={shared_run}", f"out_dir={side}"])
    cli.run_app(experiments_app.APP, ["name=scale", f"runs={shared_run}", f"out={out}/exp",
                                      f"out_dir={out}", "n_prompts=16"])
    cli.run_app(figures_app.APP, [f"runs={shared_run}", f"out={out}/figures", f"out_dir={out}",
                                  "formats=[png]", "dpi=30"])
    assert listing(shared_run) == before  # nothing written, touched or created in the run
    assert read_json(side / "eval.json")["step"] == 10 and (side / "probes.json").is_file()
    assert read_json(side / "experiments" / "scale.json")["step"] == 10
    drawn = {p.stem for p in (side / "plots").iterdir()}  # from what out_dir holds
    assert "attention" in drawn and any(name.startswith("probes_") for name in drawn), drawn
    assert any(name.startswith("spd") or "error" in name for name in drawn), drawn


def _wait_for(path, proc, seconds=240):
    deadline = time.time() + seconds
    while time.time() < deadline and not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    assert path.exists()


@pytest.mark.slow
def test_two_evaluators_while_the_run_trains(tmp_path):
    """A trainer (checkpoints every 20 steps, keeping 2: steps come and go under the readers)
    and two evaluators at once: one into the run's own eval.json, one into an out_dir."""
    run_dir = tmp_path / "run"
    trainer = subprocess.Popen(
        [sys.executable, "-m", "icl_regression.train", *TINY, f"steps={10**7}", "log_every=10",
         "ckpt_every=20", "keep_checkpoints=2", f"hydra.run.dir={run_dir}"], cwd=ROOT,
        stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(run_dir / "checkpoints" / "20", trainer)
        evaluators = [subprocess.Popen(
            [sys.executable, "-m", "icl_regression.evaluate", f"run_dir={run_dir}", *EVAL,
             *([f"out_dir={tmp_path / 'out'}"] if i else [])], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]
        results = [(e.wait(timeout=300), e.stderr.read()) for e in evaluators]
        assert trainer.poll() is None, "the trainer must still be running"
    finally:
        trainer.send_signal(signal.SIGTERM)
        _, trainer_err = trainer.communicate(timeout=120)
    for code, err in results:
        assert code == 0 and "error:" not in err and "Traceback" not in err, err
    steps = [read_json(path)["step"] for path in (run_dir / "eval.json",
                                                  tmp_path / "out" / "eval.json")]
    assert all(step >= 20 and step % 20 == 0 for step in steps), steps
    assert trainer.returncode == 0 and "Traceback" not in trainer_err, trainer_err
    logged = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")]
    assert logged == list(range(10, logged[-1] + 1, 10)) and logged[-1] > max(steps)
    shutil.rmtree(run_dir)


def test_a_refused_write_is_one_line_naming_out_dir(shared_run, monkeypatch, capfd):
    """Without out_dir on read-only storage: the write fails in one line saying what to do."""
    import errno

    from icl_regression import storage

    def read_only(path, data):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(storage, "write_atomically", read_only)
    before = listing(shared_run)
    with pytest.raises(SystemExit) as done:
        cli.run_app(probes_app.APP, [f"run_dir={shared_run}", "probes=[linear]", "n_prompts=50",
                                     "targets=[w]", "progress=false"])
    err = capfd.readouterr().err
    assert done.value.code == 2 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert str(shared_run / "probes.json") in line and "out_dir=DIR" in line
    assert "Read-only file system" in line and listing(shared_run) == before
