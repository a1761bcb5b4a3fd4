"""Shared Hydra entry logic for the training app: config validation before anything is
compiled or written, a one-line error and exit code 2 on bad input.

Hydra writes `.hydra/` into the run directory before calling the task function, so checks run
in a callback at `on_run_start` (before any directory exists) and again in the task function
(which also covers each job of a multirun)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from icl_regression.config import ConfigError, TrainConfig, to_dataclass, validate

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def checked_config(cfg: Any) -> TrainConfig:
    try:
        return validate(to_dataclass(cfg))
    except ConfigError as err:
        fail(str(err))
        raise  # unreachable


class ValidateConfig(Callback):
    """Registered in conf/train.yaml under hydra.callbacks."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        from icl_regression.storage import RunDirLocked, hold_run_lock
        from icl_regression.train.loop import check_resumable

        train_cfg = checked_config(config)
        run_dir = Path(OmegaConf.select(config, "hydra.run.dir"))
        try:
            if not train_cfg.mesh.multi_host:  # (multi-host: process 0 takes it in the task)
                hold_run_lock(run_dir)  # for the whole process, before Hydra writes .hydra/
            check_resumable(train_cfg, run_dir)
        except (ConfigError, RunDirLocked) as err:
            fail(str(err))

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        checked_config(config)


def run_hydra(task_fn: Callable[[TrainConfig, Path], Any], config_name: str) -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from icl_regression.config import register_configs

    register_configs()

    @hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")
    def _app(cfg):
        for noisy in ("jax", "absl", "orbax"):  # Hydra sets the root logger to INFO
            logging.getLogger(noisy).setLevel(logging.WARNING)
        train_cfg = checked_config(cfg)
        try:
            task_fn(train_cfg, Path(HydraConfig.get().runtime.output_dir))
        except ConfigError as err:
            fail(str(err))

    _app()
