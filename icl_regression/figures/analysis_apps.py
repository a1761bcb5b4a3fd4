"""Before the figures read a run: the analysis apps it lacks, run as subprocesses (the figures
process itself never imports JAX or model code)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from icl_regression.catalog import output_dir
from icl_regression.figures.attention import FILENAME as ATTENTION_FILE
from icl_regression.integrity import RunFileError, load_npz, read_json_or_none

# file -> the app that writes it (python -m MODULE run_dir=DIR ...)
APPS = {"eval.json": "icl_regression.evaluate", "probes.json": "icl_regression.probes",
        ATTENTION_FILE: "icl_regression.analysis.attention"}


def _attention_seed(folders: list[Path]) -> int | None:
    for folder in folders:
        try:
            return int(load_npz(folder / ATTENTION_FILE)["seed"])
        except (RunFileError, KeyError, TypeError, ValueError):
            continue
    return None


def _readable(folders: list[Path], name: str) -> bool:
    return any(read_json_or_none(folder / name) is not None for folder in folders)


def missing_files(run_dir: Path, options) -> list[str]:
    """The analysis files to compute for this run: attention.npz when a trained run lacks it
    (or holds another prompt, or a damaged one), eval.json / probes.json (absent or damaged)
    only with compute_missing=true. Looked for in `out_dir`'s folder for the run first."""
    if not (run_dir / "checkpoints").is_dir():
        return []
    folders = list(dict.fromkeys([output_dir(options.out_dir, run_dir), run_dir]))
    wanted = []
    attention = options.attention
    if attention.enabled and _attention_seed(folders) != attention.seed:
        wanted.append(ATTENTION_FILE)
    if options.compute_missing:
        wanted += [name for name in ("eval.json", "probes.json") if not _readable(folders, name)]
    return wanted


def compute_missing(run_dir: Path, options, log: Callable[[str], None] = print) -> None:
    """Run the analysis app of each missing file, writing into the run directory or, with
    `out_dir`, into the run's folder there; a failure is logged, and the figures that need
    the file are then skipped with the reason (one broken run never stops the others)."""
    target = output_dir(options.out_dir, Path(run_dir))
    for name in missing_files(Path(run_dir), options):
        command = [sys.executable, "-m", APPS[name], f"run_dir={run_dir}"]
        if options.out_dir:
            command.append(f"out_dir={target}")
        if name == ATTENTION_FILE:
            command.append(f"seed={options.attention.seed}")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            log(f"compute_missing: {' '.join(command[2:4])} failed ({last})")
