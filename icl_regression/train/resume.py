"""Resuming a run directory: the stored config a resume is checked against (recovered from the
checkpoints' own record of it when config.json is damaged or missing), and writing it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from icl_regression.config import ConfigError, TrainConfig, drop_foreign_keys
from icl_regression.integrity import read_json, set_aside, stored_config, warn_once
from icl_regression.storage import write_atomically

# Keys that may change when a run is resumed; any other difference is refused.
RESUMABLE_KEYS = {"steps", "progress", "tensorboard", "keep_checkpoints", "keep_period",
                  "ckpt_every", "mesh", "model.remat"}


def config_dict(cfg: TrainConfig) -> dict:
    """The config as config.json stores it (and each checkpoint's record of it)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _readable_config_json(path: Path) -> dict | None:
    try:
        stored = read_json(path)
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) else None


def _stored(run_dir: Path) -> dict | None:
    """config.json as stored (a key newer than the run counts as its default below); when it is
    damaged or missing, the config the checkpoints keep (RunFileError if there is none)."""
    if (stored := _readable_config_json(run_dir / "config.json")) is not None:
        # A run stored with the flat ModelConfig holds keys its model never had: no difference.
        return drop_foreign_keys(stored)
    if not (run_dir / "config.json").exists() and not (run_dir / "checkpoints").is_dir():
        return None  # a new run
    found = stored_config(run_dir)
    return None if found is None else config_dict(found[0])


def check_resumable(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse to resume a run directory whose stored config differs in a key that matters."""
    stored = _stored(Path(run_dir))
    if stored is None:
        return
    new, defaults = config_dict(cfg), config_dict(TrainConfig())

    def diff(a, b, default, prefix=""):
        for key in sorted(set(a) | set(b)):
            if f"{prefix}{key}" in RESUMABLE_KEYS:
                continue
            # A key newer than the stored run counts as its default (what the run trained with).
            va, vb = a.get(key, default.get(key)), b.get(key)
            if isinstance(va, dict) and isinstance(vb, dict):
                yield from diff(va, vb, default.get(key) or {}, f"{prefix}{key}.")
            elif va != vb:
                yield f"{prefix}{key}", va, vb

    for key, old, value in diff(stored, new, defaults):
        raise ConfigError(f"{key}={value!r} differs from the run stored in {run_dir} "
                          f"({key}={old!r}); pick a new hydra.run.dir to start a new run")


def write_config(cfg: TrainConfig, run_dir: Path) -> None:
    """RUN/config.json, atomically (other hosts may be reading it in check_resumable); a
    damaged one is first renamed to config.json.damaged, never deleted."""
    path = run_dir / "config.json"
    if (path.exists() or path.is_symlink()) and _readable_config_json(path) is None:
        warn_once(f"{path} was unreadable; kept as {set_aside(path).name}, written again")
    write_atomically(path, json.dumps(config_dict(cfg), indent=2).encode())
