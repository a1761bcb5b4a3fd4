"""The README's "Where to add what" and docs/extending.md are a working plugin: every code block
of both is run (each Python block written to the file its first line names, the TOML block as
the plugin's installed entry point, the shell block as is), end to end through the console
scripts from an unrelated directory; then the records each app wrote are read back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from conftest import ROOT

from icl_regression import cli, plugins
from icl_regression.train import app as train_app

BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def section_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the README's extending section, then in
    docs/extending.md (the plugin's files)."""
    text = (ROOT / "README.md").read_text()
    start = text.index("<!-- section: extending -->")
    end = text.find("<!-- section:", start + 1)
    readme = BLOCK.findall(text[start:end if end > 0 else None])
    return readme + BLOCK.findall((ROOT / "docs" / "extending.md").read_text())


def write_plugin(folder: Path, blocks: list[tuple[str, str]]) -> list[str]:
    """Each Python block to the file its first line names; returns the module names."""
    modules = []
    for language, code in blocks:
        if language != "python":
            continue
        path = re.match(r"# (\S+\.py)", code)[1]  # e.g. my_lab/abs_linear.py
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(code)
        modules.append(path.removesuffix(".py").replace("/", "."))
    (folder / "my_lab" / "__init__.py").write_text('"""A plugin of icl_regression."""\n')
    return modules


def install_entry_points(folder: Path, toml_code: str) -> dict:
    """The TOML block's entry points as an installed distribution's metadata on the path
    (what pip writes for them), so importlib.metadata finds them."""
    points = tomllib.loads(toml_code)["project"]["entry-points"][plugins.ENTRY_POINT_GROUP]
    info = folder / "my_lab-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my_lab\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{plugins.ENTRY_POINT_GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    return points


def _env(folder: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(folder),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_the_readme_plugin_runs_through_every_app(tmp_path):
    blocks = section_blocks()
    kinds = [language for language, _ in blocks]
    assert kinds.count("python") >= 7 and kinds.count("bash") == 1 and "toml" in kinds
    modules = write_plugin(tmp_path, blocks)
    script = next(code for language, code in blocks if language == "bash")
    assert all(module in script for module in modules)  # the commands load every file
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "abs"
    config = json.loads((run / "config.json").read_text())
    assert config["task"]["family"] == "abs_linear" and config["model"]["name"] == "narrow_gpt"
    assert set(config["plugins"]) == set(modules)
    evaluation = json.loads((run / "eval.json").read_text())
    assert {"shrunk_ols(factor=0.5)", "knn(k=3)", "ols"} <= set(evaluation["predictors"])
    baselines = json.loads((tmp_path / "runs" / "baselines.json").read_text())
    assert set(baselines["settings"]) == {"train", "flipped_x"}
    probes = json.loads((run / "probes.json").read_text())
    assert {"linear", "lstsq"} <= set(probes["targets"]["w_ols"])
    record = json.loads((run / "experiments" / "last_point.json").read_text())
    assert set(record["results"]) == {"model", "ols"}
    assert (tmp_path / "plots" / "experiments" / "last_point.png").stat().st_size > 1000
    assert list(tmp_path.glob("plots/*/loss_histogram.png"))
    assert not (ROOT / "runs" / "abs").exists()  # written under the working directory


def test_an_installed_entry_point_is_loaded_without_plugins_on_the_command_line(tmp_path):
    blocks = section_blocks()
    write_plugin(tmp_path, blocks)
    points = install_entry_points(tmp_path, next(c for lang, c in blocks if lang == "toml"))
    done = subprocess.run(
        ["icl-eval", "task=abs_linear", "n_prompts=64", "settings=[train]", "out=b.json"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "b.json").read_text())["task"]["family"] == "abs_linear"
    assert set(points.values()) == {"my_lab.abs_linear"}


@pytest.mark.parametrize("clash, what", [
    ('register_family("dup", stream_id=0, expected_y2=lambda t: 1.0, baselines=(), '
     'oracle=lambda t: ())(lambda *a: None)', "stream_id 0 is 'linear''s"),
    ("import no_such_module_anywhere", "does not import")])
def test_a_plugin_that_cannot_load_is_one_line_and_exit_2(clash, what, tmp_path, monkeypatch,
                                                          capsys):
    (tmp_path / "clashing.py").write_text(
        f'"""A broken plugin."""\nfrom icl_regression.data.families import register_family\n'
        f"{clash}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit) as stop:
        cli.run_app(train_app.APP, ["plugins=[clashing]", "debug=default"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: plugins='clashing' is not allowed;") and what in err
