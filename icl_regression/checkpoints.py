"""The only module that talks to Orbax: save / restore the training state of a run.

State is a plain pytree `{"params": ..., "opt_state": ..., "step": int}`. Keeps the latest
`keep` checkpoints plus every one at a multiple of `keep_period`. Saves are synchronous so a
SIGKILL after `save` returns never leaves a half-written latest checkpoint (Orbax writes to a
temporary directory and renames it on completion, so a kill mid-save leaves the previous one).
A checkpoint that does not restore is skipped for the previous one (`restore_newest`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

# Orbax logs every save step at INFO through absl; keep the console for progress and errors.
logging.getLogger("absl").setLevel(logging.WARNING)


class Checkpointer:
    """The trainer's checkpoints. `config`: the run's config, kept with every checkpoint (in
    its _CHECKPOINT_METADATA) so that a damaged or lost config.json can be recovered. `writer`
    (the process that writes the run, holding its lock): first removes what an earlier save cut
    short left behind (Orbax's *.orbax-checkpoint-tmp folders), saying so."""

    def __init__(self, directory: str | Path, keep: int = 2, keep_period: int = 0,
                 config: dict | None = None, writer: bool = False):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            keep_period=keep_period or None,
            create=True,
            enable_async_checkpointing=False,
        )
        self.directory = Path(directory).absolute()
        self._metadata = {"config": config} if config is not None else None
        if writer:
            for leftover in unfinished_saves(self.directory):
                shutil.rmtree(leftover, ignore_errors=True)
                print(f"note: removed {leftover}, left by a checkpoint save that did not finish",
                      file=sys.stderr)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        try:
            with _quiet_orbax():  # the error below says it in one line
                self._manager.save(step, args=ocp.args.StandardSave(state),
                                   custom_metadata=self._metadata)
                self._manager.wait_until_finished()
        except (OSError, ValueError) as err:  # disk full, quota, I/O (TensorStore: ValueError)
            _aborted_io_is_reported()
            _remove_unfinished(self.directory, step)  # what stays, the next start removes
            raise CheckpointSaveError(
                f"saving the checkpoint of step {step} in {self.directory} failed "
                f"({_first_line(err)}); the newest complete one (step {self.latest_step()}) is "
                "intact: free space and run the same command to resume from it") from None

    def restore(self, abstract_state: Any, step: int | None = None) -> Any:
        """Restore into the structure (and shardings) of `abstract_state`."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

    def restore_newest(self, abstract_state: Any) -> tuple[int, Any] | None:
        """(step, state) of the newest checkpoint that restores; damaged newer ones are moved
        aside (by process 0) so that training continues from the good one."""
        found = restore_newest(self.directory, lambda step: self.restore(abstract_state, step),
                               move_damaged=jax.process_index() == 0)
        self._manager.reload()  # its list of steps predates the moves
        return found

    def close(self) -> None:
        self._manager.close()


def checkpoint_steps(directory: str | Path) -> list[int]:
    """The steps stored under `directory`, ascending ([] when there is none); Orbax's
    temporary folders of an unfinished save and damaged-<step>/ folders are not digits."""
    path = Path(directory)
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.is_dir() else []


def unfinished_saves(directory: str | Path, step: int | None = None) -> list[Path]:
    """Orbax's temporary folders of saves that did not finish (of `step`, or of any step)."""
    path = Path(directory)
    prefix = "" if step is None else f"{step}."
    return sorted(p for p in path.iterdir() if ".orbax-checkpoint-tmp" in p.name
                  and p.name.startswith(prefix)) if path.is_dir() else []


def _remove_unfinished(directory: Path, step: int, wait_s: float = 3.0) -> None:
    """Remove the temporary folder of the failed save of `step`: again while TensorStore's
    writes still in flight (completing after the failure was raised) create files in it."""
    deadline = time.monotonic() + wait_s
    while (leftovers := unfinished_saves(directory, step)) and time.monotonic() < deadline:
        for leftover in leftovers:
            shutil.rmtree(leftover, ignore_errors=True)
        time.sleep(0.1)


def has_checkpoint(directory: str | Path) -> bool:
    return bool(checkpoint_steps(directory))


def restore_params(directory: str | Path, abstract_params: Any, step: int) -> Any:
    """Only the "params" item of the checkpoint at `step`, into the structure (and shardings)
    of `abstract_params`; the optimizer state on disk is never read."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_params)
    item = {"params": abstract}
    args = ocp.args.PyTreeRestore(item, restore_args=ocp.checkpoint_utils.construct_restore_args(
        item), partial_restore=True)
    options = ocp.CheckpointManagerOptions(create=False, read_only=True)
    manager = ocp.CheckpointManager(Path(directory).absolute(), options=options)
    try:
        return manager.restore(step, args=args)["params"]
    finally:
        manager.close()


class CheckpointSaveError(OSError):
    """A save failed (disk full, ...); the previous checkpoint is untouched."""


class NoUsableCheckpoint(FileNotFoundError):
    """Checkpoints exist but none of them restores."""


def restore_newest(directory: str | Path, restore: Callable[[int], Any],
                   move_damaged: bool = False) -> tuple[int, Any] | None:
    """Try `restore(step)` newest step first and return (step, what it restored); None when
    there is no checkpoint. One that fails (emptied or missing data file, truncated metadata)
    gets a one-line warning and is moved to damaged-<step>/ (never deleted) when
    `move_damaged` (training, which will write that step again), else only skipped
    (read-only users). NoUsableCheckpoint when none restores."""
    directory = Path(directory)
    for _ in range(5):  # again only when a live run's keep policy removed every step tried
        steps, vanished = checkpoint_steps(directory), False
        for step in reversed(steps):
            try:
                with _quiet_orbax():
                    return step, restore(step)
            except Exception as err:  # Orbax and TensorStore raise ValueError, JSON errors, ...
                _aborted_io_is_reported()
                if not (directory / str(step)).exists():
                    vanished = True  # removed meanwhile by the trainer: an older (or newer) one
                    continue
                action = f"moved to {_move_aside(directory, step)}" if move_damaged else (
                    "skipped")
                print(f"warning: checkpoint {directory / str(step)} does not restore "
                      f"({_first_line(err)}); {action}", file=sys.stderr)
        if not vanished:
            break
    if steps:
        raise NoUsableCheckpoint(
            f"no checkpoint in {directory} restores (steps {', '.join(map(str, steps))}); "
            "start a new run in another directory, or restore checkpoints from a backup")
    return None


def _move_aside(directory: Path, step: int) -> Path:
    target, n = directory / f"damaged-{step}", 1
    while target.exists():  # the same step damaged again after a retrain: keep both
        n += 1
        target = directory / f"damaged-{step}.{n}"
    shutil.move(directory / str(step), target)
    return target


def _first_line(err: BaseException, limit: int = 160) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextlib.contextmanager
def _quiet_orbax():
    """Orbax logs a failed save or restore with a traceback at ERROR; the caller reports it."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _ignore_closed_loop_callbacks() -> None:
    """After a failed restore or save, TensorStore completes the reads and writes it had in
    flight into Orbax's event loop, already closed: each would print a 'RuntimeError: Event
    loop is closed' traceback through sys.unraisablehook, from its own threads, as early as
    while the failure is still being raised. Drop those, pass the rest on; installed when this
    module is imported, before any save or restore."""
    previous = sys.unraisablehook
    if getattr(previous, "icl_filter", False):
        return

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError)
                and str(unraisable.exc_value) == "Event loop is closed"):
            previous(unraisable)

    hook.icl_filter = True
    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(_orbax_task_left_behind)


def _aborted_io_is_reported() -> None:
    """After a failed save or restore (reported in one line by the caller): the writes and
    reads Orbax had not started yet end as 'coroutine ... was never awaited' warnings at exit;
    they say nothing more."""
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited",
                            category=RuntimeWarning)


def _orbax_task_left_behind(record: logging.LogRecord) -> bool:
    """False for asyncio's 'Task exception was never retrieved' about an Orbax read or write
    whose failure was already reported (its task is collected later, at any time)."""
    if not str(record.msg).startswith("Task exception was never retrieved"):
        return True
    tb = record.exc_info[2] if record.exc_info else None
    while tb is not None:
        if "orbax" in tb.tb_frame.f_code.co_filename:
            return False
        tb = tb.tb_next
    return True


_ignore_closed_loop_callbacks()
