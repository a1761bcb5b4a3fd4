"""The catalog of run directories: finding them under paths and globs, and naming them for tables
and figure legends. No JAX here: the figures and experiments apps both find runs through it.

A run directory holds `config.json` (and `.hydra/config.yaml` when Hydra made it),
`metrics.jsonl`, `eval.json`, `probes.json`, `attention.npz`, `checkpoints/` and `plots/`;
a multirun folder holds several of them, one per job.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from icl_regression.config import ConfigError

RUN_FILES = ("config.json", "metrics.jsonl", "eval.json", "probes.json")
NOT_RUNS = {".hydra", "checkpoints", "plots"}  # sub-folders of a run, never searched


def discover_runs(patterns: Sequence[str]) -> list[Path]:
    """Run directories under each pattern (a path or a glob), searched recursively, sorted."""
    found: set[Path] = set()
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else (
            [pattern] if os.path.exists(pattern) else [])
        if not matches:
            raise ConfigError(f"runs={pattern!r}: no such directory, or nothing matches the glob")
        for match in matches:
            for dirpath, dirnames, filenames in os.walk(match):
                if ".hydra" in dirnames or any(f in filenames for f in RUN_FILES):
                    found.add(Path(dirpath))
                dirnames[:] = sorted(d for d in dirnames if d not in NOT_RUNS)
    return sorted(found)


def run_labels(runs: Sequence[tuple[Path, Mapping]]) -> list[str]:
    """One label per (run directory, config dict): the run's `name`, plus the path below the
    folder its same-named runs share when that name is not unique; filename-safe."""
    by_name: dict[str, list[int]] = {}
    for index, (path, config) in enumerate(runs):
        by_name.setdefault(str(config.get("name") or path.name), []).append(index)
    labels = [""] * len(runs)
    for name, group in by_name.items():
        common = os.path.commonpath([str(runs[i][0].resolve()) for i in group])
        for i in group:
            tail = os.path.relpath(runs[i][0].resolve(), common) if len(group) > 1 else "."
            labels[i] = re.sub(r"[^\w.\-]+", "_", name if tail == "." else f"{name}_{tail}")
    return labels


def output_dir(out_dir: str | Path | None, run_dir: Path) -> Path:
    """Where an app that serves many runs writes what it computes for one of them: the run
    directory itself, or with `out_dir` (runs on read-only storage, or someone else's) a folder
    of its own there, OUT_DIR/<run folder>-<8 hex digits of its full path>."""
    if not out_dir:
        return Path(run_dir)
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
    name = re.sub(r"[^\w.-]+", "_", Path(run_dir).resolve().name)
    return Path(out_dir) / f"{name}-{digest}"
