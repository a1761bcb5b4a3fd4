"""Reading a stored run directory's files for the figures (finding runs is catalog.py).
Never computes (the figures CLI runs the analysis apps first when asked: `compute_missing`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from icl_regression.catalog import output_dir, run_labels
from icl_regression.config import model_label as registered_label
from icl_regression.figures.attention import read_attention
from icl_regression.integrity import RunFileError, read_json_or_none
from icl_regression.storage import load_config, read_jsonl


@dataclass
class RunRecord:
    path: Path
    config: dict
    metrics: list[dict] | None = None
    eval: dict | None = None
    probes: dict | None = None
    attention: dict | None = None  # attention.npz: one prompt's (L, H, T, T) and labels
    layerwise: dict | None = None  # layerwise.json
    notes: list[str] = field(default_factory=list)  # figures not drawn, and why
    label: str = ""


def _read_json(folders: Sequence[Path], name: str, notes: list[str]) -> dict | None:
    """The first readable `name` (a JSON object) among `folders`; a note for each damaged one."""
    for folder in folders:
        value = read_json_or_none(folder / name, notes)
        if isinstance(value, dict):
            return value
        if value is not None:
            notes.append(f"{name} unreadable (not a JSON object)")
    return None


def _read_attention(folders: Sequence[Path], notes: list[str]) -> dict | None:
    for folder in folders:
        try:
            found = read_attention(folder)
        except (RunFileError, KeyError, ValueError, TypeError) as error:
            notes.append(f"attention.npz unreadable ({error})")
            continue
        if found is not None:
            return found
    return None


def load_record(run_dir: Path, out_dir: str | None = None) -> RunRecord | str:
    """Everything a run directory holds for the figures, or the reason it cannot be drawn;
    the analysis files are looked for in `out_dir`'s folder for the run first."""
    try:
        config = dataclasses.asdict(load_config(run_dir))
    except FileNotFoundError:
        return "no config.json or .hydra/config.yaml (not a run directory, or never started)"
    except Exception as error:
        return f"run config unreadable ({error})"
    record = RunRecord(run_dir, config)
    folders = list(dict.fromkeys([output_dir(out_dir, run_dir), run_dir]))
    metrics = run_dir / "metrics.jsonl"
    record.metrics = (read_jsonl(metrics, record.notes) or None) if metrics.is_file() else None
    for attr, filename in (("eval", "eval.json"), ("probes", "probes.json")):
        value = _read_json(folders, filename, record.notes)
        if value is None:
            record.notes.append(f"no {filename} (compute_missing=true computes it)")
        setattr(record, attr, value)
    record.layerwise = _read_json(folders, "layerwise.json", record.notes)
    record.attention = _read_attention(folders, record.notes)
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
    name = registered_label(model["name"]) if "name" in model else "model"
    return f"{name}, {model['n_layer']} layers" if "n_layer" in model else str(name)


def bayes_lambda(eval_json: Mapping | None) -> float | None:
    """λ* of the run's task, as evaluation stored it (the `ridge(lam=bayes)` predictor's λ);
    None when the task has no finite positive λ* (evaluation then leaves that predictor out)."""
    predictor = ((eval_json or {}).get("predictors") or {}).get("ridge(lam=bayes)") or {}
    lam = (predictor.get("params") or {}).get("lam")
    return float(lam) if isinstance(lam, (int, float)) and np.isfinite(lam) else None
