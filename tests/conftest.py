"""Shared test helpers: composing Hydra configs in-process and tiny training configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from icl_regression.config import GPTConfig, TaskConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "icl_regression" / "conf"


def compose(overrides: list[str], config_name: str = "train"):
    """Compose a Hydra config exactly as the entry point would (schema included)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from icl_regression.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides,
                             return_hydra_config=False)


def sweep_of(preset: str, key: str) -> tuple[str, list[str]]:
    """A sweep preset's Hydra mode and the values it sweeps `key` over."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from icl_regression.config import register_configs

    register_configs()  # the schema train.yaml lists first, whatever ran before in this worker
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", [f"preset={preset}"], return_hydra_config=True)
    return cfg.hydra.mode.name, str(cfg.hydra.sweeper.params[key]).split(",")


def tiny_config(**overrides) -> TrainConfig:
    """A model small enough to compile and run in a couple of seconds."""
    base = TrainConfig(
        task=TaskConfig(d=3, n_points=6),
        model=GPTConfig(n_layer=2, n_head=2, d_model=16),
        steps=20, batch_size=16, log_every=5, ckpt_every=10, progress=False)
    import dataclasses

    return dataclasses.replace(base, **overrides)


@pytest.fixture
def tiny():
    return tiny_config
