"""A run directory from elsewhere is data, never code: no pickle or YAML tag is executed, a
declared size is checked before anything is allocated, and symlinks out of the directory are
refused; each refusal is one line naming the file."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile

import numpy as np
import pytest
from conftest import tiny_config

from icl_regression import cli
from icl_regression.evaluate import app as evaluate_app
from icl_regression.figures.stored_runs import load_record
from icl_regression.integrity import RunFileError, load_config, load_npz
from icl_regression.train.loop import train_run


class _Marker:
    """Unpickling this writes a file: proof that code ran."""

    path = ""

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("secure") / "run"
    train_run(tiny_config(steps=10, log_every=5, ckpt_every=5), run_dir)
    return run_dir


@pytest.fixture
def run(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def _npz(path, **arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def test_a_pickle_in_an_npz_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "executed"
    _Marker.path = str(marker)
    holder = np.empty(1, dtype=object)
    holder[0] = _Marker()
    _npz(tmp_path / "attention.npz", attention=holder)
    assert pickle.dumps(holder)  # it is a real pickle payload
    with pytest.raises(RunFileError, match="attention.npz is unreadable.*Python objects"):
        load_npz(tmp_path / "attention.npz")
    assert not marker.exists()


def test_a_huge_declared_shape_is_refused_before_allocating(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**6, 10**6, 10**3)})
    with zipfile.ZipFile(tmp_path / "attention.npz", "w") as archive:
        archive.writestr("attention.npy", header.getvalue() + b"\0" * 16)
    with pytest.raises(RunFileError, match=r"declares shape \(1000000, 1000000, 1000\)"):
        load_npz(tmp_path / "attention.npz")


@pytest.mark.parametrize("member", ["../escape.npy", "/abs.npy", "a/b.npy", "notes.txt"])
def test_odd_member_names_are_refused(tmp_path, member):
    with zipfile.ZipFile(tmp_path / "attention.npz", "w") as archive:
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(2))
        archive.writestr(member, buffer.getvalue())
    with pytest.raises(RunFileError, match="unexpected member"):
        load_npz(tmp_path / "attention.npz")


def test_yaml_tags_do_not_run_code(tmp_path, capfd):
    marker = tmp_path / "executed"
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(
        f"steps: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(RunFileError, match=r"\.hydra/config\.yaml is unreadable"):
        load_config(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("link", ["config.json", "eval.json", "checkpoints"])
def test_symlinks_out_of_the_run_are_refused_in_one_line(run, tmp_path, link, capfd):
    outside = tmp_path / "elsewhere"
    if not (run / link).exists():
        (run / link).write_text("{}")
    shutil.move(run / link, outside)
    (run / link).symlink_to(outside)
    with pytest.raises(RunFileError, match="is a symlink out of the run directory"):
        load_config(run)
    with pytest.raises(SystemExit) as done:
        cli.run_app(evaluate_app.APP, [f"run_dir={run}", f"out_dir={tmp_path / 'out'}",
                                       "n_prompts=8", "settings=[train]", "progress=false"])
    assert done.value.code == 2
    err = capfd.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert str(run / link) in line and "Traceback" not in err
    assert isinstance(load_record(run), str)  # the figures skip it, saying why


def test_a_link_inside_the_run_is_fine(run):
    (run / "eval.json").write_text("{}")
    (run / "latest.json").symlink_to(run / "eval.json")
    assert load_config(run).steps == 10


def test_a_config_declaring_a_huge_model_is_refused_before_loading(run):
    from icl_regression.run import load_run

    config = json.loads((run / "config.json").read_text())
    config["model"].update(d_model=1 << 16, n_head=1, n_layer=64)
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunFileError, match="declares a model of .* parameters"):
        load_run(run)


def test_a_stored_experiment_record_cannot_redirect_writes(run, tmp_path):
    """A stored record's own run_dir (crafted: elsewhere) never decides where anything goes:
    the run found on disk does (per-run plots are written under it)."""
    from icl_regression.experiments.app import experiments_config, run_experiment

    cfg = experiments_config({"name": "scale", "runs": str(run), "out": str(tmp_path / "o"),
                              "n_prompts": 16})
    run_experiment(cfg, log=lambda _: None)
    stored = json.loads((run / "experiments" / "scale.json").read_text())
    stored["run_dir"] = str(tmp_path / "victim" / ".." / "victim")
    (run / "experiments" / "scale.json").write_text(json.dumps(stored))
    report = run_experiment(cfg, log=lambda _: None)  # the stored record is reused
    assert [r["run_dir"] for r in report.records] == [str(run)]
    assert not (tmp_path / "victim").exists()
