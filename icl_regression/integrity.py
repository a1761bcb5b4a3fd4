"""Reading a run directory that may be damaged, shared read-only, or crafted elsewhere (no JAX
here: the figures read runs through this module).

Every file is read defensively: a truncated, emptied, garbled, missing or unreadable file is
either worked around (the run's config is recovered from the record each checkpoint keeps of
it) or reported as a `RunFileError`, one line naming the file and what to do. Nothing read here
runs code: JSON, YAML through OmegaConf's safe loader, NumPy archives without pickles and with
their declared sizes checked first; symlinks that leave the run directory are refused.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from icl_regression.config import ConfigError, TrainConfig, drop_foreign_keys, to_dataclass

CHECKPOINT_METADATA = "_CHECKPOINT_METADATA"  # Orbax's JSON record of each saved step
MAX_ARRAY_ELEMENTS = 1 << 28  # per array of a stored .npz (1 GiB of float32)
_warned: set[str] = set()


class RunFileError(ConfigError):
    """A file of a run directory is damaged, unreadable or unsafe; the message names it and
    what to do (an app prints it as its one `error:` line, exit code 2)."""


def first_line(err: BaseException, limit: int = 120) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def warn_once(message: str) -> None:
    """One `warning:` line on stderr, once per process."""
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def read_json(path: str | Path) -> Any:
    """The JSON in `path`; OSError (missing, a directory, unreadable) and ValueError (truncated,
    garbage, empty, not UTF-8) pass through for the caller to word."""
    return json.loads(Path(path).read_bytes().decode())


def read_json_or_none(path: str | Path, notes: list[str] | None = None) -> Any:
    """`read_json`, or None when the file is absent or damaged (a note says which)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError) as err:
        if notes is not None:
            notes.append(f"{path.name} unreadable ({first_line(err)})")
        return None


def set_aside(path: str | Path) -> Path:
    """Rename a damaged file (or whatever stands at `path`) to NAME.damaged[.N]: never deleted,
    and out of the way of the file written in its place."""
    path = Path(path)
    target, n = path.with_name(path.name + ".damaged"), 1
    while target.exists() or target.is_symlink():
        n += 1
        target = path.with_name(f"{path.name}.damaged.{n}")
    os.replace(path, target)
    return target


def check_no_escaping_links(run_dir: str | Path) -> None:
    """Refuse a run directory holding a symlink to anything outside it (a crafted run could
    make a reader read, or a writer overwrite, files elsewhere)."""
    root = os.path.realpath(run_dir)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                target = os.path.realpath(path)
                if os.path.commonpath([root, target]) != root:
                    raise RunFileError(
                        f"{path} is a symlink out of the run directory (to {target}); refusing "
                        "to read the run: copy the file in, or remove the link")


def checkpoint_configs(run_dir: str | Path):
    """(step, config dict) of each checkpoint that keeps a record of the run's config, newest
    first (`Checkpointer(config=...)` stores it in the step's _CHECKPOINT_METADATA)."""
    directory = Path(run_dir) / "checkpoints"
    steps = sorted((int(p.name) for p in directory.iterdir() if p.name.isdigit()),
                   reverse=True) if directory.is_dir() else []
    for step in steps:
        try:
            record = read_json(directory / str(step) / CHECKPOINT_METADATA)
            config = record["custom_metadata"]["config"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(config, dict):
            yield step, config


def _config_of(load) -> tuple[TrainConfig | None, str | None]:
    """(config, None), or (None, why not) when the source is damaged."""
    try:
        stored = load()
        if not isinstance(stored, dict):  # Hydra's config.yaml: plain containers first
            from omegaconf import OmegaConf

            stored = OmegaConf.to_container(stored, resolve=False)
        # Runs stored when ModelConfig was one flat record hold keys their model never had.
        return to_dataclass(drop_foreign_keys(stored)), None
    except Exception as err:  # noqa: BLE001 - JSON, YAML, OmegaConf, schema: all mean damaged
        return None, first_line(err)


def stored_config(run_dir: str | Path) -> tuple[TrainConfig, str] | None:
    """The run's config and where it came from: config.json, Hydra's .hydra/config.yaml, or
    the newest checkpoint's record of it (a warning says so when config.json is damaged or
    missing). None: no config anywhere (not a run). RunFileError: config.json is damaged and
    nothing else holds the config."""
    run_dir = Path(run_dir)
    check_no_escaping_links(run_dir)
    path, hydra_cfg = run_dir / "config.json", run_dir / ".hydra" / "config.yaml"
    damaged = None
    if path.exists() or path.is_symlink():
        cfg, damaged = _config_of(lambda: read_json(path))
        if cfg is not None:
            return cfg, str(path)
    if hydra_cfg.exists():
        from omegaconf import OmegaConf  # a yaml.SafeLoader: no Python objects from tags

        cfg, why = _config_of(lambda: OmegaConf.load(hydra_cfg))
        if cfg is not None:
            if damaged:
                warn_once(f"{path} unreadable ({damaged}); using {hydra_cfg}")
            return cfg, str(hydra_cfg)
        if not damaged:
            path, damaged = hydra_cfg, why
    for step, record in checkpoint_configs(run_dir):
        cfg, _ = _config_of(lambda record=record: record)
        if cfg is not None:
            state = f"unreadable ({damaged})" if damaged else "missing"
            warn_once(f"{path} {state}; using the copy of the config kept with checkpoint "
                      f"{step}")
            return cfg, f"checkpoint {step}"
    if damaged:
        raise RunFileError(f"{path} is unreadable ({damaged}) and no checkpoint keeps a copy of "
                           f"the run's config: restore {path.name} from a backup, or start a "
                           "new run in another directory")
    return None


def load_config(run_dir: str | Path) -> TrainConfig:
    """The run's config (see `stored_config`); FileNotFoundError when there is none."""
    found = stored_config(run_dir)
    if found is None:
        raise FileNotFoundError(f"{run_dir} holds no config.json or .hydra/config.yaml: not a "
                                "run")
    return found[0]


def load_npz(path: str | Path, max_elements: int = MAX_ARRAY_ELEMENTS) -> dict[str, np.ndarray]:
    """Every array of a .npz archive, checked before anything is allocated: member names are
    plain `NAME.npy`, no object arrays (no pickles), at most `max_elements` per array.
    RunFileError (naming the file) for anything else: damaged, crafted or unreadable."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = {}
            for member in archive.namelist():
                name = member.removesuffix(".npy")
                if not member.endswith(".npy") or not name.isidentifier():
                    raise ValueError(f"unexpected member {member!r}")
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    header = {(1, 0): np.lib.format.read_array_header_1_0,
                              (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if header is None:
                        raise ValueError(f"{member}: .npy format {version} not accepted")
                    shape, _, dtype = header(handle)
                    if dtype.hasobject:
                        raise ValueError(f"{member} holds Python objects (a pickle)")
                    if int(np.prod(shape, dtype=np.float64)) > max_elements:
                        raise ValueError(f"{member} declares shape {shape}, too large")
                with archive.open(member) as handle:
                    arrays[name] = np.lib.format.read_array(handle, allow_pickle=False)
            return arrays
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise RunFileError(f"{path} is unreadable ({first_line(err)}); delete it to have it "
                           "computed again") from None
