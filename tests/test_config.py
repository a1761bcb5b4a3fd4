"""Every config composes; every bad value stops with a one-line error before compute."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONF_DIR, ROOT, compose, sweep_of

from icl_regression.config import ConfigError, to_dataclass, validate

PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
GROUPS = {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml"))
          for g in ("task", "model", "optim", "curriculum")}


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_and_validates(preset):
    cfg = validate(to_dataclass(compose([f"experiment={preset}"])))
    assert cfg.name  # each preset names its run folder
    first = (CONF_DIR / "experiment" / f"{preset}.yaml").read_text().splitlines()
    assert any("python -m" in line or "make " in line for line in first[:4]), \
        "a preset starts with the command that runs it"


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_group_option_composes(group, option):
    validate(to_dataclass(compose([f"{group}={option}"])))


def test_garg_linear_matches_the_paper_setup():
    cfg = validate(to_dataclass(compose(["experiment=garg_linear"])))
    assert (cfg.task.d, cfg.task.n_points) == (20, 41)
    assert (cfg.model.n_layer, cfg.model.d_model, cfg.model.n_head) == (12, 256, 8)
    assert cfg.curriculum.enabled and cfg.curriculum.dims_start == 5
    assert (cfg.curriculum.points_start, cfg.curriculum.points_inc) == (11, 2)
    assert (cfg.batch_size, cfg.optim.lr, cfg.steps) == (64, 1e-4, 500_000)




@pytest.mark.parametrize("override,key", [
    ("task.d=0", "task.d"),
    ("model.n_head=3", "model.n_head"),
    ("task.x_dist=cauchy", "task.x_dist"),
    ("model.encoding=zigzag", "model.encoding"),
    ("optim.schedule=linear", "optim.schedule"),
    ("ckpt_every=150", "ckpt_every"),
    ("task.noise_std=-1", "task.noise_std"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        validate(to_dataclass(compose([override])))
    message = str(err.value)
    assert message.startswith(key) and "\n" not in message
    assert "allowed" in message or "must" in message


def test_curriculum_ending_above_task_size_is_refused():
    with pytest.raises(ConfigError, match="curriculum.dims_end"):
        validate(to_dataclass(compose(["curriculum=garg", "task.d=10",
                                       "curriculum.dims_end=12"])))
    with pytest.raises(ConfigError, match="curriculum.points_start"):
        validate(to_dataclass(compose(["curriculum=garg", "task.n_points=9"])))


def test_unknown_key_and_wrong_type_fail_at_composition():
    with pytest.raises(Exception, match="task.dd|dd"):
        compose(["task.dd=3"])
    with pytest.raises(Exception, match="task.d"):
        compose(["task.d=abc"])


@pytest.mark.parametrize("override,key", [("model.n_head=3", "model.n_head"),
                                          ("task.d=abc", "task.d")])
def test_cli_exits_nonzero_with_one_line_and_writes_nothing(tmp_path: Path, override, key):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "icl_regression.train", override, f"hydra.run.dir={run_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert key in proc.stderr
    assert not run_dir.exists()  # nothing compiled, nothing written


@pytest.mark.parametrize("preset,key,jobs", [
    ("depth_sweep", "model.n_layer", 4), ("depth_sweep_cpu", "model.n_layer", 4),
    ("noise_sweep", "task.noise_std", 5), ("noise_sweep_cpu", "task.noise_std", 4)])
def test_sweep_presets_expand_to_the_expected_jobs(preset, key, jobs):
    mode, values = sweep_of(preset, key)
    assert mode == "MULTIRUN"
    assert len(values) == jobs
    for value in values:  # every job's config is valid
        validate(to_dataclass(compose([f"experiment={preset}", f"{key}={value}"])))
