"""Reading a stored run directory's files for the figures (finding runs is catalog.py).
Never computes (the figures CLI runs the analysis apps first when asked: `compute_missing`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from icl_regression.catalog import run_labels
from icl_regression.figures.attention import read_attention
from icl_regression.storage import load_config, read_jsonl

MODEL_NAMES = {"gpt": "transformer", "lsa": "LSA"}

@dataclass
class RunRecord:
    path: Path
    config: dict
    metrics: list[dict] | None = None
    eval: dict | None = None
    probes: dict | None = None
    attention: dict | None = None  # attention.npz: one prompt's (L, H, T, T) and labels
    notes: list[str] = field(default_factory=list)  # figures not drawn, and why
    label: str = ""


def _read_json(path: Path, notes: list[str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        notes.append(f"{path.name} unreadable ({error})")
        return None


def load_record(run_dir: Path) -> RunRecord | str:
    """Everything a run directory holds for the figures, or the reason it cannot be drawn."""
    try:
        config = dataclasses.asdict(load_config(run_dir))
    except FileNotFoundError:
        return "no config.json or .hydra/config.yaml (not a run directory, or never started)"
    except Exception as error:
        return f"run config unreadable ({error})"
    record = RunRecord(run_dir, config)
    metrics = run_dir / "metrics.jsonl"
    record.metrics = (read_jsonl(metrics, record.notes) or None) if metrics.is_file() else None
    for attr, filename in (("eval", "eval.json"), ("probes", "probes.json")):
        value = _read_json(run_dir / filename, record.notes)
        if value is None:
            record.notes.append(f"no {filename} (compute_missing=true computes it)")
        setattr(record, attr, value)
    try:
        record.attention = read_attention(run_dir)
    except (OSError, ValueError, KeyError) as error:
        record.notes.append(f"attention.npz unreadable ({error})")
    if record.metrics is None and record.eval is None and record.probes is None:
        unreadable = [n for n in record.notes if "unreadable" in n]
        return "nothing to plot: no metrics.jsonl, eval.json or probes.json" + (
            f" ({'; '.join(unreadable)})" if unreadable else "")
    return record


def label_records(records: Sequence[RunRecord]) -> None:
    """Set each record's label (catalog.run_labels: the run's name, made unique)."""
    for record, label in zip(records, run_labels([(r.path, r.config) for r in records]),
                             strict=True):
        record.label = label


def model_label(config: Mapping) -> str:
    model = config.get("model", {})
    name = MODEL_NAMES.get(model.get("name"), model.get("name", "model"))
    return f"{name}, {model['n_layer']} layers" if "n_layer" in model else str(name)


def bayes_lambda(eval_json: Mapping | None) -> float | None:
    """λ* of the run's task, as evaluation stored it (the `ridge(lam=bayes)` predictor's λ);
    None when the task has no finite positive λ* (evaluation then leaves that predictor out)."""
    predictor = ((eval_json or {}).get("predictors") or {}).get("ridge(lam=bayes)") or {}
    lam = (predictor.get("params") or {}).get("lam")
    return float(lam) if isinstance(lam, (int, float)) and np.isfinite(lam) else None
