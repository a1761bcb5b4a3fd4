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

import jax
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


def checkpoint_steps(directory: str | Path) -> list[int]:
    """The steps stored under `directory`, ascending ([] when there is none); Orbax's
    temporary folders of an unfinished save are not digits, so they are not listed."""
    path = Path(directory)
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.is_dir() else []


def has_checkpoint(directory: str | Path) -> bool:
    return bool(checkpoint_steps(directory))


def restore_params(directory: str | Path, abstract_params: Any, step: int) -> Any:
    """Only the "params" item of the checkpoint at `step`, into the structure (and shardings)
    of `abstract_params`; the optimizer state on disk is never read."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_params)
    item = {"params": abstract}
    args = ocp.args.PyTreeRestore(item, restore_args=ocp.checkpoint_utils.construct_restore_args(
        item), partial_restore=True)
    options = ocp.CheckpointManagerOptions(create=False)
    manager = ocp.CheckpointManager(Path(directory).absolute(), options=options)
    try:
        return manager.restore(step, args=args)["params"]
    finally:
        manager.close()
