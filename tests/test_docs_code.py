"""Every code block of README.md and docs/ is executed (tests/docs_blocks.py says how each kind
runs): an example that stops working fails here, not in a reader's terminal. The README's
extending section and docs/extending.md are run end to end by tests/test_extending.py."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from docs_blocks import (
    APPS,
    LANGUAGES,
    MODULE_APPS,
    ROOT,
    blocks,
    project_commands,
    python_with_run,
    with_run,
)
from test_extending import section_blocks

from icl_regression import plugins

BLOCKS = blocks()
EXTENDING = {code for _, code in section_blocks()}  # run by test_extending.py
PYTHON = [b for b in BLOCKS if b.language == "python" and b.text not in EXTENDING]
BASH = [b for b in BLOCKS if b.language == "bash" and b.text not in EXTENDING]
TOML = [b for b in BLOCKS if b.language == "toml"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_block_is_code_of_a_known_kind_or_declared_output():
    unknown = [f"{b.id} ({b.language or 'no language'})" for b in BLOCKS
               if b.language not in LANGUAGES]
    assert not unknown, f"label each block python, bash, toml or text: {unknown}"
    assert len(PYTHON) + len(BASH) >= 20  # the collector still finds the docs' examples


def test_the_extending_blocks_are_the_ones_test_extending_runs():
    in_docs = {b.text for b in BLOCKS if b.path.name == "extending.md"
               or (b.path.name == "README.md" and b.text in EXTENDING)}
    assert in_docs == EXTENDING and len(EXTENDING) >= 8


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> str:
    """A two-step quickstart run: what a documented command's `run_dir=DIR` points at."""
    from icl_regression.cli import compose_train
    from icl_regression.train.loop import train_run

    run_dir = tmp_path_factory.mktemp("docs") / "run"
    train_run(compose_train(["preset=quickstart", "debug=default", "progress=false"]), run_dir)
    return str(run_dir)


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block_runs(block, trained_run, tmp_path):
    code = python_with_run(block.text, trained_run)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{block.id}:\n{done.stderr[-3000:]}"


def check_app(name: str, args: list[str]) -> None:
    from icl_regression.cli import check_command_line

    app = importlib.import_module(APPS[name]).APP
    try:
        check_command_line(app, [*args, "--cfg", "job"])  # --cfg: no run directory is taken
    except SystemExit as exit_:
        pytest.fail(f"`{name} {' '.join(args)}` is refused (exit {exit_.code}); see stderr")


def check_command(words: list[str], run_dir: str) -> None:
    head, args = words[0], with_run(words[1:], run_dir)
    if head in APPS:
        return check_app(head, args)
    if head == "python" and args[:1] == ["-m"]:
        module = args[1]
        if module in MODULE_APPS:
            return check_app(MODULE_APPS[module], args[2:])
        assert importlib.util.find_spec(module) is not None, f"no module {module}"
        return None
    if head == "python":
        script = ROOT / args[0]
        assert script.is_file(), f"no script {args[0]}"
        return compile(script.read_text(), str(script), "exec") and None
    if head == "make":
        done = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"make {' '.join(args)}: {done.stderr}"
        return None
    if head == "pip":
        extras = PYPROJECT["project"]["optional-dependencies"]
        for arg in args:
            if arg.startswith(".["):
                assert set(arg[2:-1].split(",")) <= set(extras), f"pip {arg}: no such extra"
        return None
    if head == "pytest":
        paths = [a.split("::")[0] for a in args if not a.startswith("-") and a != "slow"]
        missing = [p for p in paths if not (ROOT / p).exists()]
        assert not missing, f"pytest: no {missing}"
        return None
    pytest.fail(f"a documented command of unknown kind: {' '.join(words)}")


@pytest.mark.parametrize("block", BASH, ids=[b.id for b in BASH])
def test_shell_block_commands_are_accepted(block, trained_run, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # an app's relative paths land here, never in the checkout
    # What the pages' earlier steps leave behind, for commands that read it (icl-lsa).
    (tmp_path / "runs" / "oswald_lsa").mkdir(parents=True)
    (tmp_path / "runs" / "oswald_lsa" / "reference").symlink_to(trained_run)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "lsa_numbers.json").write_text("{}")
    found = project_commands(block.text)
    assert found, f"{block.id}: no command of the project in this block"
    for words in found:
        check_command(words, trained_run)


@pytest.mark.parametrize("block", TOML, ids=[b.id for b in TOML])
def test_toml_block_parses_and_names_the_plugin_group(block):
    data = tomllib.loads(block.text)
    groups = data.get("project", {}).get("entry-points", {})
    assert set(groups) <= {plugins.ENTRY_POINT_GROUP}, groups


def test_a_broken_command_is_caught():
    """The check refuses what the app refuses: a key that does not exist."""
    with pytest.raises(pytest.fail.Exception):
        check_command(["icl-train", "preset=quickstart", "model.no_such_key=1"], str(Path(".")))
