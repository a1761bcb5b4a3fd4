"""The fault table (faults_table.py): every file of a run directory, damaged five ways, under
every app, run in-process through cli.run_app. Each case ends as the table says (success, or
one `error:` line naming the file with exit code 2), with no traceback, and nothing intact lost:
the readers (they write to out_dir) leave the run directory byte for byte as it was, the trainer
keeps every intact file's content somewhere in it (a damaged checkpoint is moved aside)."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
from conftest import tiny_config
from faults_table import APPS, DAMAGES, FILES, cases, damaged_path, expected, fast_cases, render
from train.faults_support import compile_once

from icl_regression import cli
from icl_regression.checkpoints import checkpoint_steps
from icl_regression.evaluate import app as evaluate_app
from icl_regression.experiments import app as experiments_app
from icl_regression.figures import app as figures_app
from icl_regression.integrity import read_json
from icl_regression.probes import app as probes_app
from icl_regression.storage import read_jsonl
from icl_regression.train import app as train_app

CFG = tiny_config(steps=20, log_every=5, ckpt_every=5, keep_checkpoints=4)
TRAIN = ["model.n_layer=2", "model.n_head=2", "model.d_model=16", "task.d=3", "task.n_points=6",
         "batch_size=16", "progress=false", "steps=20", "log_every=5", "ckpt_every=5",
         "keep_checkpoints=4", "loss_target=labels", "optim.lr=0.001", "optim.warmup_steps=200",
         "hydra.run.dir={run}"]
ARGV = {
    "train": (train_app.APP, TRAIN),
    "evaluate": (evaluate_app.APP, ["run_dir={run}", "out_dir={out}", "n_prompts=16",
                                    "settings=[train]", "implicit_prompts=8",
                                    "expensive_prompts=8", "progress=false"]),
    "probes": (probes_app.APP, ["run_dir={run}", "out_dir={out}", "probes=[linear]",
                                "n_prompts=50", "targets=[w]", "untrained_control=false",
                                "progress=false"]),
    "figures": (figures_app.APP, ["runs={run}", "out={out}", "formats=[png]", "dpi=30",
                                  "per_run_plots=false", "attention.enabled=false"]),
    "experiments": (experiments_app.APP, ["name=scale", "runs={run}", "out={out}",
                                          "out_dir={out}/runs", "n_prompts=16",
                                          "per_run_plots=false"]),
}


def run_app(name: str, run, out) -> int:
    """The app in this process, as its command line would run it: the exit code."""
    app, argv = ARGV[name]
    try:
        cli.run_app(app, [a.format(run=run, out=out) for a in argv])
    except SystemExit as done:
        return 0 if done.code is None else done.code
    return 0


FIXTURES = (compile_once,)  # pytest finds the shared cache fixture by name in this module


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):  # after compile_once (autouse, same scope)
    """A trained tiny run (checkpoints 5..20) holding every file the apps write."""
    from icl_regression.analysis.attention import write_attention
    from icl_regression.evaluate.layerwise import layerwise_run
    from icl_regression.run import load_run
    from icl_regression.train.loop import train_run

    run_dir = tmp_path_factory.mktemp("base") / "run"
    out = tmp_path_factory.mktemp("base_out")
    train_run(CFG, run_dir)
    for name in ("evaluate", "probes", "experiments"):  # written into the run itself
        app, argv = ARGV[name]
        argv = [a for a in argv if not a.startswith("out_dir=")]
        cli.run_app(app, [a.format(run=run_dir, out=out) for a in argv])
    run = load_run(run_dir)
    layerwise_run(run, n_prompts=100, settings=("train",), algorithms=("gd",))
    write_attention(run)
    assert all(damaged_path(run_dir, f).is_file() for f in FILES)
    return run_dir


def snapshot(run_dir) -> dict[str, str]:
    """Relative path -> sha1 of every file under the run directory."""
    found = {}
    for dirpath, _, filenames in os.walk(run_dir):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, run_dir)] = hashlib.sha1(handle.read()).hexdigest()
    return found


def _params(all_cases):
    return [pytest.param(*c, id="-".join(c).replace(" ", "_"),
                         marks=() if c in fast_cases() else pytest.mark.slow) for c in all_cases]


@pytest.mark.parametrize("file,damage,app", _params(cases()))
def test_fault_table(file, damage, app, base_run, tmp_path, capfd):
    run_dir, out = tmp_path / "run", tmp_path / "out"
    shutil.copytree(base_run, run_dir)
    path = damaged_path(run_dir, file)
    intact = {p: h for p, h in snapshot(run_dir).items() if p != os.path.relpath(path, run_dir)}
    DAMAGES[damage](path)
    before = snapshot(run_dir)
    capfd.readouterr()
    code = run_app(app, run_dir, out)
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text and "Exception ignored" not in text, text[-3000:]
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    if expected(file, damage, app) == "error":
        assert code == 2 and len(errors) == 1 and str(path) in errors[0], (code, text[-2000:])
    else:
        assert code == 0 and not errors, (code, text[-2000:])
    after = snapshot(run_dir)
    if app == "train":  # every intact file's content is still in the run (the lock: rewritten;
        kept = set(after.values())  # metrics.jsonl: checked below, its redone lines differ)
        lost = [p for p, h in intact.items() if h not in kept]
        assert set(lost) <= {".run.lock", "metrics.jsonl"}, lost
        if code == 0:
            assert checkpoint_steps(run_dir / "checkpoints")[-1] == 20
            assert read_json(run_dir / "config.json")["steps"] == 20
            metrics = run_dir / "metrics.jsonl"  # a finished run that lost it writes none
            steps = [r["step"] for r in read_jsonl(metrics)] if metrics.exists() else []
            if file != "metrics.jsonl":  # the lines up to the checkpoint resumed from: as before
                assert steps == [5, 10, 15, 20]
                old = (base_run / "metrics.jsonl").read_text().splitlines()
                assert (run_dir / "metrics.jsonl").read_text().splitlines()[:3] == old[:3]
            else:  # a finished run's lost lines cannot be redone; the damaged file is kept
                assert steps == [5, 10, 15, 20][:len(steps)]
                assert (run_dir / "metrics.jsonl.damaged").exists() == (
                    damage in ("truncated", "garbage", "unreadable"))
    else:  # a reader writes nothing into the run directory
        assert after == before
    if code == 0 and app in ("evaluate", "probes"):
        stored = read_json(out / ("eval.json" if app == "evaluate" else "probes.json"))
        newest_damaged = file in ("checkpoint data", "checkpoint array metadata",
                                  "checkpoint manifest")
        assert stored["step"] == (15 if newest_damaged else 20)


def test_the_table_covers_every_file_damage_and_app():
    assert len(cases()) == len(FILES) * len(DAMAGES) * len(APPS)
    fast = fast_cases()  # the default run: every file once, every app and every damage
    assert sorted(f for f, _, _ in fast) == sorted(FILES)
    assert {a for _, _, a in fast} == set(APPS) and {d for _, d, _ in fast} == set(DAMAGES)


def test_docs_show_this_table():
    from faults_table import DOC

    assert render() in DOC.read_text(), "run python tests/faults_table.py"
