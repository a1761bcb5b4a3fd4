"""The training app's Hydra task: every expected failure is one line and an exit code."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

from icl_regression.checkpoints import CheckpointSaveError, NoUsableCheckpoint
from icl_regression.config import TrainConfig
from icl_regression.storage import RunDirLocked
from icl_regression.train.loop import NonFiniteLossError, train_and_evaluate

# Exit codes of the training app besides 0 (done, or stopped by a signal with a checkpoint)
# and 2 (bad input: configuration, run directory in use, no checkpoint restores).
EXIT_DIVERGED, EXIT_WRITE_FAILED = 3, 4
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES}


def train_task(cfg: TrainConfig, run_dir: Path) -> dict:
    """The Hydra task: `train_and_evaluate`, with every expected failure as one line and an
    exit code instead of a traceback."""
    try:
        summary = train_and_evaluate(cfg, run_dir)
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
