"""The training app's Hydra task: every expected failure is one line and an exit code."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

from icl_regression.checkpoints import CheckpointSaveError, NoUsableCheckpoint
from icl_regression.cli import App, fail, run_app
from icl_regression.config import ConfigError, TrainConfig, validate
from icl_regression.storage import RunDirLocked, hold_run_lock
from icl_regression.train.loop import NonFiniteLossError, check_resumable, train_run
from icl_regression.train.mesh import shutdown_distributed

# Exit codes of the training app besides 0 (done, or stopped by a signal with a checkpoint)
# and 2 (bad input: configuration, run directory in use, no checkpoint restores).
EXIT_DIVERGED, EXIT_WRITE_FAILED = 3, 4
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES}


def train_command(cfg: TrainConfig, run_dir: Path) -> dict:
    """The Hydra task: `train_run`, with every expected failure as one line and an
    exit code instead of a traceback."""
    try:
        summary = train_run(cfg, run_dir)
    except NonFiniteLossError as err:
        _exit(err, EXIT_DIVERGED)
    except (RunDirLocked, NoUsableCheckpoint) as err:
        _exit(err, 2)
    except CheckpointSaveError as err:
        _exit(err, EXIT_WRITE_FAILED)
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        _exit(f"writing to {run_dir} failed ({err}); the newest checkpoint is intact: fix it "
              "and run the same command to resume", EXIT_WRITE_FAILED)
    if summary["stopped_by"]:
        sys.exit(0)  # not on to the next job of a sequential multirun: the signal meant stop
    return summary


def _exit(message: object, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def lock_and_check(cfg: TrainConfig, run_dir: Path) -> None:
    """Before Hydra writes anything: take the run directory's lock for the whole process (a
    second writer stops here, one line, exit 2) and refuse a resume with another config.
    Multi-host runs: process 0 takes the lock inside the task instead."""
    try:
        if not cfg.mesh.multi_host:
            hold_run_lock(run_dir)
        check_resumable(cfg, run_dir)
    except (ConfigError, RunDirLocked) as err:
        fail(str(err))


APP = App("train", TrainConfig, validate, train_command, precheck=lock_and_check,
          entry_groups=True)


def main() -> None:
    """`icl-train` / `python -m icl_regression.train`: the training app (cli.py runs it)."""
    try:
        run_app(APP)
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    main()
