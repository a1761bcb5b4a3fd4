"""Reading stored run directories for the figures: discovery, files, labels. Never computes,
except `eval.json`/`probes.json` when the caller asks (`compute_missing`).

A run directory holds `config.json` (and `.hydra/config.yaml` when Hydra made it),
`metrics.jsonl`, `eval.json`, `probes.json`, `checkpoints/` and `plots/`;
a multirun folder holds several of them, one per job.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from icl_regression.config import ConfigError, TaskConfig

RUN_FILES = ("config.json", "metrics.jsonl", "eval.json", "probes.json")
NOT_RUNS = {".hydra", "checkpoints", "plots"}  # sub-folders of a run, never searched
MODEL_NAMES = {"gpt": "transformer", "lsa": "LSA"}

@dataclass
class RunRecord:
    path: Path
    config: dict
    metrics: list[dict] | None = None
    eval: dict | None = None
    probes: dict | None = None
    notes: list[str] = field(default_factory=list)  # figures not drawn, and why
    label: str = ""


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


def _read_json(path: Path, notes: list[str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        notes.append(f"{path.name} unreadable ({error})")
        return None


def _read_metrics(path: Path, notes: list[str]) -> list[dict] | None:
    if not path.is_file():
        return None
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError:  # a run killed mid-write leaves a partial last line
            notes.append(f"metrics.jsonl line {number} unreadable; using the {len(records)} "
                         "lines before it")
            break
    return records or None


def _compute(run_dir: Path, module: str, function: str, notes: list[str]) -> None:
    """Call icl_regression.<module>.<function>(run_dir), imported only when asked for."""
    try:
        compute = getattr(importlib.import_module(f"icl_regression.{module}"), function)
    except (ImportError, AttributeError) as error:
        notes.append(f"compute_missing: icl_regression.{module}.{function} is not available "
                     f"({error})")
        return
    try:
        compute(str(run_dir))
    except Exception as error:  # one broken run must not stop the figures of the others
        notes.append(f"compute_missing: {module}.{function} failed ({type(error).__name__}: "
                     f"{error})")


def load_record(run_dir: Path, compute_missing: bool = False) -> RunRecord | str:
    """Everything a run directory holds for the figures, or the reason it cannot be drawn."""
    from icl_regression.run import load_config

    try:
        config = dataclasses.asdict(load_config(run_dir))
    except FileNotFoundError:
        return "no config.json or .hydra/config.yaml (not a run directory, or never started)"
    except Exception as error:
        return f"run config unreadable ({error})"
    record = RunRecord(run_dir, config)
    record.metrics = _read_metrics(run_dir / "metrics.jsonl", record.notes)
    computed = (("eval", "eval.json", "evaluate.runner", "evaluate_run"),
                ("probes", "probes.json", "probes.runner", "probe_run"))
    for attr, filename, module, function in computed:
        value = _read_json(run_dir / filename, record.notes)
        if value is None and compute_missing:
            _compute(run_dir, module, function, record.notes)
            value = _read_json(run_dir / filename, record.notes)
        elif value is None:
            record.notes.append(f"no {filename} (compute_missing=true computes it)")
        setattr(record, attr, value)
    if record.metrics is None and record.eval is None and record.probes is None:
        unreadable = [n for n in record.notes if "unreadable" in n]
        return "nothing to plot: no metrics.jsonl, eval.json or probes.json" + (
            f" ({'; '.join(unreadable)})" if unreadable else "")
    return record


def run_labels(records: Sequence[RunRecord]) -> None:
    """Label = experiment name, plus the path below the shared folder when it is not unique."""
    by_experiment: dict[str, list[RunRecord]] = {}
    for record in records:
        by_experiment.setdefault(str(record.config.get("name") or record.path.name),
                                 []).append(record)
    for experiment, group in by_experiment.items():
        common = os.path.commonpath([str(r.path.resolve()) for r in group])
        for record in group:
            tail = os.path.relpath(record.path.resolve(), common) if len(group) > 1 else "."
            label = experiment if tail == "." else f"{experiment}_{tail}"
            record.label = re.sub(r"[^\w.\-]+", "_", label)


def model_label(config: Mapping) -> str:
    model = config.get("model", {})
    name = MODEL_NAMES.get(model.get("name"), model.get("name", "model"))
    return f"{name}, {model['n_layer']} layers" if "n_layer" in model else str(name)


def bayes_lambda(config: Mapping) -> float | None:
    """λ* of the run's task via tasks.bayes_ridge_lambda (imported here: it brings in JAX)."""
    from icl_regression.data.tasks import bayes_ridge_lambda

    known = {f.name for f in dataclasses.fields(TaskConfig)}
    try:
        task = TaskConfig(**{k: v for k, v in config.get("task", {}).items() if k in known})
        value = bayes_ridge_lambda(task)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None
