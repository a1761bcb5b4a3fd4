"""Run logging: one JSON object per log step in `metrics.jsonl` (+ optional TensorBoard),
and a progress bar with loss, steps/s and ETA."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from icl_regression.storage import write_text


class MetricsWriter:
    """Appends JSON lines; on resume, drops lines past the restored step (they are redone)."""

    def __init__(self, path: str | Path, resume_step: int = 0, tensorboard: bool = False,
                 enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= resume_step]
            write_text(self.path, "".join(line + "\n" for line in kept))
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as err:
                raise RuntimeError("tensorboard=true needs `pip install tensorboardX`") from err
            self._tb = SummaryWriter(str(self.path.parent / "tensorboard"))

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
