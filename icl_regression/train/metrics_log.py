"""Run logging: one JSON object per log step in `metrics.jsonl` (+ optional TensorBoard),
and a progress bar with loss, steps/s and ETA."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from icl_regression.integrity import set_aside
from icl_regression.storage import read_jsonl, write_text


class MetricsWriter:
    """Appends JSON lines; on resume, drops lines past the restored step (they are redone)."""

    def __init__(self, path: str | Path, resume_step: int = 0, tensorboard: bool = False,
                 enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        if self.path.exists() or self.path.is_symlink():
            self._keep_until(resume_step)
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as err:
                raise RuntimeError("tensorboard=true needs `pip install tensorboardX`") from err
            self._tb = SummaryWriter(str(self.path.parent / "tensorboard"))

    def _keep_until(self, resume_step: int) -> None:
        """Keep the lines up to the restored step. Lines past an unreadable one (a damaged
        file) are not trusted: the file is renamed to metrics.jsonl.damaged first."""
        notes: list[str] = []
        try:
            records = read_jsonl(self.path, notes)
        except OSError as err:  # e.g. a directory in its place
            notes, records = [f"{self.path.name} unreadable ({err.strerror})"], []
        if notes:
            print(f"warning: {notes[0]}; kept as {set_aside(self.path).name}, written again",
                  file=sys.stderr)
        kept = [r for r in records if isinstance(r.get("step"), int) and r["step"] <= resume_step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def chunk_record(metrics: dict, step: int, n_steps: int, dt: float, elapsed: float) -> dict:
    """One metrics.jsonl line from the per-step metrics of a chunk."""
    return {"step": step, "loss": float(metrics["loss"].mean()),
            "loss_norm": float(metrics["loss_norm"].mean()),
            "lr": float(metrics["lr"][-1]),
            "grad_norm": float(metrics["grad_norm"].mean()),
            "param_norm": float(metrics["param_norm"][-1]),
            "steps_per_sec": n_steps / dt, "elapsed_s": elapsed,
            "curriculum_dims": int(metrics["curriculum_dims"][-1]),
            "curriculum_points": int(metrics["curriculum_points"][-1])}


def progress_bar(total: int, initial: int, enabled: bool, desc: str = "train"):
    """tqdm shows steps, steps/s and ETA; loss goes in the postfix."""
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="step",
                dynamic_ncols=True, file=sys.stderr, mininterval=1.0)
