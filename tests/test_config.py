"""Every config composes; every bad value stops with a one-line error before compute."""

import dataclasses
import json

import pytest
import yaml
from conftest import CONF_DIR, compose, sweep_of

from icl_regression.config import (
    ConfigError,
    CurriculumConfig,
    OptimConfig,
    TaskConfig,
    TrainConfig,
    XDist,
    to_dataclass,
    validate,
)

PRESETS = sorted(p.stem for p in (CONF_DIR / "preset").glob("*.yaml"))
GROUPS = {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml"))
          for g in ("task", "model", "optim", "curriculum", "debug")}


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_and_validates(preset):
    cfg = validate(to_dataclass(compose([f"preset={preset}"])))
    assert cfg.name  # each preset names its run folder
    first = (CONF_DIR / "preset" / f"{preset}.yaml").read_text().splitlines()
    assert any("python -m" in line or "make " in line for line in first[:4]), \
        "a preset starts with the command that runs it"


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_group_option_composes(group, option):
    validate(to_dataclass(compose([f"{group}={option}"])))


def test_garg_linear_matches_the_paper_setup():
    cfg = validate(to_dataclass(compose(["preset=garg_linear"])))
    assert (cfg.task.d, cfg.task.n_points) == (20, 41)
    assert (cfg.model.n_layer, cfg.model.d_model, cfg.model.n_head) == (12, 256, 8)
    assert cfg.curriculum.enabled and cfg.curriculum.dims_start == 5
    assert (cfg.curriculum.points_start, cfg.curriculum.points_inc) == (11, 2)
    assert (cfg.batch_size, cfg.optim.lr, cfg.steps) == (64, 1e-4, 500_000)




@pytest.mark.parametrize("override,key", [
    ("task.d=0", "task.d"),
    ("task.n_points=1", "task.n_points"),
    ("model.n_head=3", "model.n_head"),
    ("ckpt_every=150", "ckpt_every"),
    ("keep_period=1500", "keep_period"),
    ("task.noise_std=-1", "task.noise_std"),
    ("optim.b2=1.0", "optim.b2"),
    ("mesh.coordinator_address=node1", "mesh.coordinator_address"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        validate(to_dataclass(compose([override])))
    message = str(err.value)
    assert message.startswith(f"{key}=") and "\n" not in message
    assert " is not allowed; " in message


@pytest.mark.parametrize("override,key", [("task.x_dist=cauchy", "task.x_dist"),
                                          ("model.encoding=zigzag", "model.encoding"),
                                          ("optim.schedule=linear", "optim.schedule"),
                                          ("task.d=abc", "task.d"), ("task.dd=3", "task.dd")])
def test_choices_types_and_keys_fail_at_composition(override, key):
    """Enums, types and unknown keys are the schema's: Hydra's composition refuses them."""
    with pytest.raises(Exception) as err:
        compose([override])
    assert key.rpartition(".")[2] in str(err.value.__cause__ or err.value)


def test_curriculum_ending_above_task_size_is_refused():
    with pytest.raises(ConfigError, match="curriculum.dims_end"):
        validate(to_dataclass(compose(["curriculum=garg", "task.d=10",
                                       "curriculum.dims_end=12"])))
    with pytest.raises(ConfigError, match="curriculum.points_start"):
        validate(to_dataclass(compose(["curriculum=garg", "task.n_points=9"])))


def test_choices_behave_as_their_strings():
    """Enum choices keep `== "gaussian"`, JSON, f-strings and dict lookups working."""
    cfg = validate(to_dataclass(compose(["task.x_dist=skewed", "model.dtype=bfloat16"])))
    assert cfg.task.x_dist is XDist.skewed and cfg.task.x_dist == "skewed"
    assert f"{cfg.task.x_dist}/{cfg.model.dtype}" == "skewed/bfloat16"
    assert {"bfloat16": 2}[cfg.model.dtype] == 2
    stored = json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert stored["task"]["x_dist"] == "skewed" and stored["model"]["name"] == "gpt"
    assert to_dataclass(stored) == cfg  # a run's config.json reads back to the same config
    assert isinstance(cfg.curriculum, CurriculumConfig) and cfg.task.d == 5


def test_configs_built_in_python_are_checked_too():
    """OmegaConf does not see a TrainConfig made in a notebook; validate checks its choices."""
    with pytest.raises(ConfigError, match=r"^task.x_dist='cauchy' is not allowed; choose from"):
        validate(TrainConfig(task=TaskConfig(x_dist="cauchy")))
    with pytest.raises(ConfigError, match=r"^optim.lr=nan is not allowed; must be a finite"):
        validate(TrainConfig(optim=OptimConfig(lr=float("nan"))))


@pytest.mark.parametrize("path", sorted(CONF_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_app_yamls_only_pick_groups_so_defaults_live_in_the_schema(path):
    keys = set(yaml.safe_load(path.read_text()))
    assert keys <= {"defaults", "hydra"}, keys - {"defaults", "hydra"}
    assert yaml.safe_load(path.read_text())["defaults"][0] == f"{path.stem}_schema"


@pytest.mark.parametrize("preset,key,jobs", [
    ("depth_sweep", "model.n_layer", 4), ("depth_sweep_cpu", "model.n_layer", 4),
    ("noise_sweep", "task.noise_std", 5), ("noise_sweep_cpu", "task.noise_std", 4)])
def test_sweep_presets_expand_to_the_expected_jobs(preset, key, jobs):
    mode, values = sweep_of(preset, key)
    assert mode == "MULTIRUN"
    assert len(values) == jobs
    for value in values:  # every job's config is valid
        validate(to_dataclass(compose([f"preset={preset}", f"{key}={value}"])))
