"""A real library install: `python -m build` makes a wheel, which goes into a fresh virtual
environment (non-editable: nothing points back at the source tree), and its console scripts run
from an unrelated directory, finding their configs inside the installed package and writing
runs under that directory. The dependencies come from the test environment (a path entry, not
its site directory, so the source tree's editable finder is not loaded)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_trains_and_evaluates_from_any_directory(tmp_path):
    # Built from a copy of the tracked tree: setuptools writes build/ next to the sources.
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True,
                             text=True).stdout.split()
    for name in tracked:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)],
                   check=True, capture_output=True, timeout=900)
    wheel = next(dist.glob("icl_regression-*.whl"))
    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([python, "-c", purelib], check=True, capture_output=True,
                          text=True).stdout.strip()
    Path(site, "test_env_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([python, "-c", "import icl_regression; print(icl_regression.__file__)"],
                           cwd=elsewhere, check=True, capture_output=True, text=True).stdout
    assert where.startswith(site) and str(ROOT) not in where
    train = subprocess.run([fresh / "bin" / "icl-train", "debug=default", "hydra.run.dir=runs/x"],
                           cwd=elsewhere, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    assert json.loads((elsewhere / "runs/x/config.json").read_text())["name"] == "quickstart"
    evaluate = subprocess.run([fresh / "bin" / "icl-eval", "run_dir=runs/x", "n_prompts=64",
                               "settings=[train]"], cwd=elsewhere, capture_output=True,
                              text=True, timeout=600)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert json.loads((elsewhere / "runs/x/eval.json").read_text())["step"] == 2
