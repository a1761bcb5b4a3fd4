"""Files every stage writes or reads: atomic writes, JSON with NaN -> null, JSON lines, the run
config (no JAX here: the figures read runs through this module)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from icl_regression.config import TrainConfig, to_dataclass


def write_atomically(path: str | Path, data: bytes) -> None:
    """Temp file in the same folder + os.replace: a reader never sees half a file, and a kill
    mid-write leaves the previous file as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.chmod(tmp, 0o644)  # mkstemp makes files owner-only
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def finite_or_none(values: Any) -> Any:
    """Arrays / scalars -> nested lists of floats, NaN and ±inf -> None (JSON null)."""
    array = np.asarray(values, np.float64)
    if array.ndim == 0:
        value = float(array)
        return value if math.isfinite(value) else None
    return [finite_or_none(v) for v in array]


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    """Atomic JSON write; NaN is refused (convert with `finite_or_none` first)."""
    write_atomically(path, (json.dumps(obj, indent=indent, allow_nan=False) + "\n").encode())


def read_jsonl(path: str | Path, notes: list[str] | None = None) -> list[dict]:
    """JSON lines up to the first unreadable one (a run killed mid-write leaves a partial
    last line); `notes` receives a line saying where reading stopped."""
    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            if notes is not None:
                notes.append(f"{Path(path).name} line {number} unreadable; using the "
                             f"{len(records)} lines before it")
            break
    return records


def write_text(path: str | Path, text: str) -> None:
    """Atomic text write (UTF-8)."""
    write_atomically(path, text.encode())


def load_config(run_dir: str | Path) -> TrainConfig:
    """The run's config: `config.json` (written by training) or Hydra's `.hydra/config.yaml`."""
    run_dir = Path(run_dir)
    if (run_dir / "config.json").exists():
        return to_dataclass(json.loads((run_dir / "config.json").read_text()))
    hydra_cfg = run_dir / ".hydra" / "config.yaml"
    if hydra_cfg.exists():
        from omegaconf import OmegaConf

        return to_dataclass(OmegaConf.load(hydra_cfg))
    raise FileNotFoundError(f"{run_dir} holds no config.json or .hydra/config.yaml: not a run")

