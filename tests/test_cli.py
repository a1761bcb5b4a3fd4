"""Every app's bad input ends in one line `error: KEY=VALUE is not allowed; ...`, exit 2, with
nothing written: in-process through cli.preflight (fast), and a handful of real commands."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from conftest import ROOT

from icl_regression import cli, demo
from icl_regression.analysis import app as lsa_app
from icl_regression.config import ConfigError, TrainConfig
from icl_regression.config.build import type_hints
from icl_regression.evaluate import app as evaluate
from icl_regression.experiments import app as experiments
from icl_regression.figures import app as figures
from icl_regression.probes import app as probes
from icl_regression.reproduce import app as reproduce
from icl_regression.train import app as train_app


def _bench_app():
    spec = importlib.util.spec_from_file_location("baselines_speed",
                                                  ROOT / "benchmarks" / "baselines_speed.py")
    module = sys.modules["baselines_speed"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.APP


APPS = {"train": train_app.APP, "demo": demo.APP, "evaluate": evaluate.APP, "probes": probes.APP,
        "figures": figures.APP, "experiments": experiments.APP, "lsa": lsa_app.APP,
        "reproduce": reproduce.APP, "bench_baselines": _bench_app()}
ONE_LINE = re.compile(r"^[\w.\[\]/+~-]+=.* is not allowed; \S.*$")


@pytest.fixture(scope="module")
def trained_looking(tmp_path_factory) -> Path:
    """A folder with checkpoints/: enough for the checks of run_dir (nothing is loaded)."""
    run_dir = tmp_path_factory.mktemp("run")
    (run_dir / "checkpoints").mkdir()
    return run_dir


def required(name: str, run_dir: Path) -> list[str]:
    """Overrides that make an app's config complete (its required keys)."""
    return {"probes": [f"run_dir={run_dir}"], "experiments": ["name=scale", "runs=x"],
            "lsa": ["train=true"]}.get(name, [])


def error_of(name: str, overrides: list[str], multirun: bool = False) -> str | None:
    """What the app prints for `overrides` (without `error: `), or None if they are accepted."""
    app = APPS[name]
    try:
        cli.preflight(app, overrides, multirun)
    except Exception as err:  # noqa: BLE001 - error_line must handle whatever preflight raises
        return cli.error_line(err, app.schema, overrides)
    return None


@pytest.mark.parametrize("name", APPS)
def test_every_app_composes_with_its_defaults(name, trained_looking):
    assert error_of(name, required(name, trained_looking)) is None


BAD_INPUT = {  # app -> (a wrong type, an out-of-range value) with the line each must print
    "train": [("task.d=abc", "task.d='abc' is not allowed; must be an integer"),
              ("task.n_points=1", "task.n_points=1 is not allowed; must be >= 2")],
    "demo": [("model.encoding=zigzag", "model.encoding='zigzag' is not allowed; must be one "
              "of interleaved, paired"), ("keep_period=150", "keep_period=150 is not allowed")],
    "evaluate": [("task.d=abc", "task.d='abc' is not allowed; must be an integer"),
                 ("settings=[train,nope]", "settings='nope' is not allowed; choose from train")],
    "probes": [("layers=abc", "layers='abc' is not allowed; must be a list"),
               ("mlp.hidden=0", "mlp.hidden=0 is not allowed; must be >= 1")],
    "figures": [("dpi=abc", "dpi='abc' is not allowed; must be an integer"),
                ("formats=[gif]", "formats='gif' is not allowed; choose from png")],
    "experiments": [("corrupted_demos.modes=[flip]", "corrupted_demos.modes[0]='flip' is not "
                     "allowed; must be one of noise, other_w"),
                    ("name=nope", "name='nope' is not allowed; allowed: task_diversity")],
    "lsa": [("depths=[a]", "depths[0]='a' is not allowed; must be an integer"),
            ("n_eval=1", "n_eval=1 is not allowed; must be >= 2")],
    "reproduce": [("seeds=0", "seeds=0 is not allowed; must be >= 1"),
                  ("scale=huge", "scale='huge' is not allowed; allowed: cpu, paper, smoke"),
                  ("claims=[garg.nope]", "claims='garg.nope' is not allowed; allowed: all, a "
                   "paper")],
    "bench_baselines": [("points=abc", "points='abc' is not allowed; must be an integer"),
                        ("points=1", "points=1 is not allowed; must be >= 2")],
}


@pytest.mark.parametrize("name,override,expected",
                         [(n, o, e) for n, cases in BAD_INPUT.items() for o, e in cases])
def test_bad_value_is_one_line_naming_the_key(name, override, expected, trained_looking):
    message = error_of(name, [*required(name, trained_looking), override])
    assert message is not None and message.startswith(expected), message
    assert ONE_LINE.match(message), message


@pytest.mark.parametrize("name", APPS)
def test_unknown_key_and_unknown_group_option_are_one_line(name, trained_looking):
    base = required(name, trained_looking)
    unknown = error_of(name, [*base, "colour=3"])
    assert unknown.startswith("colour='3' is not allowed; unknown key; the config has: ")
    launcher = error_of(name, [*base, "hydra/launcher=nope"])
    assert launcher.startswith("hydra/launcher='nope' is not allowed; choose from basic")
    for line in (unknown, launcher):
        assert ONE_LINE.match(line), line


@pytest.mark.parametrize("name,override,expected", [
    ("train", "preset=no_such_preset", "preset='no_such_preset' is not allowed; "
     "choose from architectures, architectures_base, "),
    ("demo", "model=nope", "model='nope' is not allowed; choose from gpt, gru"),
    ("evaluate", "task=nope", "task='nope' is not allowed; choose from decision_tree, linear"),
    ("train", "task.d=1,2", "task.d='1,2' is not allowed; a sweep needs -m (--multirun)"),
])
def test_unknown_preset_and_sweep_without_multirun(name, override, expected):
    assert error_of(name, [override]) .startswith(expected)


@pytest.mark.parametrize("name,hint", [("probes", "run_dir=??? is not allowed; run_dir is "
                                        "required: a trained run directory"),
                                       ("experiments", "name=??? is not allowed; name is "
                                        "required; one of task_diversity, ")])
def test_missing_required_key_is_one_line(name, hint):
    assert error_of(name, []).startswith(hint)


def test_every_job_of_a_multirun_is_checked_before_it_starts():
    assert error_of("train", ["debug=default", "seed=0,1"], multirun=True) is None
    assert error_of("train", ["debug=default", "model.n_head=2,3"], multirun=True) == \
        "model.n_head=3 is not allowed; must divide model.d_model=16"
    # A preset that sets hydra.mode=MULTIRUN is a multirun without -m.
    assert error_of("train", ["preset=depth_sweep_cpu", "model.d_model=48",
                              "model.n_head=3"]) is None
    assert error_of("train", ["preset=depth_sweep_cpu", "model.n_head=3"]) == \
        "model.n_head=3 is not allowed; must divide model.d_model=64"


def test_the_training_config_is_checked_once_per_process(monkeypatch):
    calls = []
    from icl_regression.config import checks

    original = checks.validate_task
    monkeypatch.setattr(checks, "validate_task", lambda t: calls.append(t) or original(t))
    overrides = ["seed=918273"]  # a config no other test has checked in this process
    # No precheck: it would take the lock of a run directory under runs/, which another test of
    # this worker may hold for the same second's directory.
    cli.preflight(train_app.APP, overrides, False, precheck=False)
    cfg = cli.compose_train(overrides)
    assert cli.checked(train_app.APP, cli.compose("train", TrainConfig, overrides)) == cfg
    assert len(calls) == 1


def test_cli_imports_no_stage_package():
    """cli.py <-> train/loop.py was an import cycle; cli now imports only the shared modules."""
    tree = ast.parse((ROOT / "icl_regression" / "cli.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    ours = {m for m in imported if m and m.startswith("icl_regression")}
    assert ours <= {"icl_regression.command_line", "icl_regression.config",
                    "icl_regression.config.build", "icl_regression.plugins",
                    "icl_regression.storage"}, ours


# --- the table: every key of every schema, fed a wrong type, 0, a negative, an absurd value ---

def schema_keys(schema: type, prefix: str = "") -> list[tuple[str, typing.Any]]:
    keys = []
    for f in dataclasses.fields(schema):
        kind = type_hints(schema)[f.name]
        if dataclasses.is_dataclass(kind):
            keys += schema_keys(kind, f"{prefix}{f.name}.")
        else:
            keys.append((f"{prefix}{f.name}", kind))
    return keys


def feed(name: str, base, key: str, raw: str) -> str | None:
    """`key=raw` applied to the composed `base` as Hydra applies an override, then built and
    checked: the app's error line, or None when the value is accepted."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    app, override = APPS[name], f"{key}={raw}"
    old = OmegaConf.select(base, key)
    old = OmegaConf.to_container(old) if OmegaConf.is_config(old) else old
    try:
        OmegaConf.update(base, key, OverridesParser.create().parse_override(override).value(),
                         merge=True)
        cli.checked(app, base)
    except (ConfigError, HydraException, OmegaConfBaseException) as err:
        return cli.error_line(err, app.schema, [override])
    finally:  # back to the composed value (cheaper than a copy of the config per value)
        OmegaConf.update(base, key, old, merge=False)
    return None


ABSURD = "1000000000000"
MUST_REJECT = {("train", "task.n_points", "0"), ("train", "task.n_points", "-1"),
               ("train", "task.d", "0"), ("train", "batch_size", "0"), ("train", "optim.lr", "0"),
               ("train", "optim.b1", ABSURD), ("train", "seed", ABSURD),
               ("train", "task.noise_std", "nan"), ("train", "task.corrupt_fraction", "-1"),
               ("train", "mesh.num_processes", "-1"), ("train", "steps", "abc"),
               ("evaluate", "n_prompts", "0"), ("evaluate", "task.n_points", "-1"),
               ("probes", "n_prompts", "0"), ("probes", "attention.learning_rate", "inf"),
               ("figures", "dpi", ABSURD), ("experiments", "n_prompts", "-1"),
               ("lsa", "n_eval", "0"), ("bench_baselines", "repeats", "0")}
MUST_ACCEPT = {("train", "steps", ABSURD), ("train", "task.w_mean", "-1"),
               ("train", "curriculum.dims_start", "0"), ("probes", "positions", "0"),
               ("evaluate", "implicit_queries", "0"), ("figures", "runs", "abc")}


def test_every_schema_key_is_either_accepted_or_rejected_in_one_line(trained_looking):
    from omegaconf import OmegaConf

    outcomes, bad_lines = {}, []
    for name, app in APPS.items():
        base = cli.compose(app.config_name, app.schema, required(name, trained_looking))
        OmegaConf.set_struct(base, True)
        for key, kind in schema_keys(app.schema):
            values = ["abc", "0", "-1", ABSURD] + (["nan", "inf"] if kind is float else [])
            for raw in values:
                line = outcomes[name, key, raw] = feed(name, base, key, raw)
                if line is not None and not (ONE_LINE.match(line) and key.split(".")[-1] in line):
                    bad_lines.append((name, key, raw, line))
    assert not bad_lines, bad_lines[:5]
    assert [c for c in MUST_REJECT if outcomes[c] is None] == []
    assert [(c, outcomes[c]) for c in MUST_ACCEPT if outcomes[c] is not None] == []
    rejected = sum(line is not None for line in outcomes.values())
    assert 0.3 < rejected / len(outcomes) < 0.95  # the table exercises both outcomes


# --- a handful of real commands: exit code 2, one line, nothing written ---------------------

@pytest.mark.parametrize("module,args", [
    ("icl_regression.train", ["task.d=abc", "hydra.run.dir={tmp}/run"]),
    ("icl_regression.train", ["-m", "preset=no_such_preset", "hydra.sweep.dir={tmp}/run"]),
    ("icl_regression.evaluate", ["colour=red", "out={tmp}/run/eval.json"]),
])
def test_command_exits_2_with_one_line_and_writes_nothing(module, args, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert ONE_LINE.match(done.stderr.strip()[len("error: "):]), done.stderr
    assert not (tmp_path / "run").exists()
