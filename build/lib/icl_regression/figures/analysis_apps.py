"""Before the figures read a run: the analysis apps it lacks, run as subprocesses (the figures
process itself never imports JAX or model code)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from icl_regression.figures.attention import FILENAME as ATTENTION_FILE

# file -> the app that writes it (python -m MODULE run_dir=DIR ...)
APPS = {"eval.json": "icl_regression.evaluate", "probes.json": "icl_regression.probes",
        ATTENTION_FILE: "icl_regression.analysis.attention"}


def _attention_seed(path: Path) -> int | None:
    import numpy as np

    try:
        with np.load(path) as stored:
            return int(stored["seed"])
    except (OSError, ValueError, KeyError):
        return None


def missing_files(run_dir: Path, options) -> list[str]:
    """The analysis files to compute for this run: attention.npz when a trained run lacks it
    (or holds another prompt), eval.json / probes.json only with compute_missing=true."""
    if not (run_dir / "checkpoints").is_dir():
        return []
    wanted = []
    attention = options.attention
    if attention.enabled and _attention_seed(run_dir / ATTENTION_FILE) != attention.seed:
        wanted.append(ATTENTION_FILE)
    if options.compute_missing:
        wanted += [name for name in ("eval.json", "probes.json") if not (run_dir / name).is_file()]
    return wanted


def compute_missing(run_dir: Path, options, log: Callable[[str], None] = print) -> None:
    """Run the analysis app of each missing file; a failure is logged, and the figures that
    need the file are then skipped with the reason (one broken run never stops the others)."""
    for name in missing_files(Path(run_dir), options):
        command = [sys.executable, "-m", APPS[name], f"run_dir={run_dir}"]
        if name == ATTENTION_FILE:
            command.append(f"seed={options.attention.seed}")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            log(f"compute_missing: {' '.join(command[2:4])} failed ({last})")
