"""The only module that talks to Orbax: save / restore the training state of a run.

State is a plain pytree `{"params": ..., "opt_state": ..., "step": int}`. Keeps the latest
`keep` checkpoints plus every one at a multiple of `keep_period`. Saves are synchronous so a
SIGKILL after `save` returns never leaves a half-written latest checkpoint (Orbax writes to a
temporary directory and renames it on completion, so a kill mid-save leaves the previous one).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

# Orbax logs every save step at INFO through absl; keep the console for progress and errors.
logging.getLogger("absl").setLevel(logging.WARNING)


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int = 2, keep_period: int = 0):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            keep_period=keep_period or None,
            create=True,
            enable_async_checkpointing=False,
        )
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        self._manager.save(step, args=ocp.args.StandardSave(state))
        self._manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None) -> Any:
        """Restore into the structure (and shardings) of `abstract_state`."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

    def close(self) -> None:
        self._manager.close()


def has_checkpoint(directory: str | Path) -> bool:
    path = Path(directory)
    return path.is_dir() and any(p.name.isdigit() for p in path.iterdir())
