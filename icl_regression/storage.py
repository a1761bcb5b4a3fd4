"""Files every stage writes or reads: atomic writes, JSON with NaN -> null, JSON lines, the run
config (no JAX here: the figures read runs through this module)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from icl_regression.integrity import RunFileError, load_config  # noqa: F401 - re-exported


def write_atomically(path: str | Path, data: bytes) -> None:
    """Temp file in the same folder + os.replace: a reader never sees half a file, and a kill
    mid-write leaves the previous file as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.chmod(tmp, 0o644)  # mkstemp makes files owner-only
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def finite_or_none(values: Any) -> Any:
    """Arrays / scalars -> nested lists of floats, NaN and ±inf -> None (JSON null)."""
    array = np.asarray(values, np.float64)
    if array.ndim == 0:
        value = float(array)
        return value if math.isfinite(value) else None
    return [finite_or_none(v) for v in array]


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    """Atomic JSON write; NaN is refused (convert with `finite_or_none` first)."""
    write_atomically(path, (json.dumps(obj, indent=indent, allow_nan=False) + "\n").encode())


def read_jsonl(path: str | Path, notes: list[str] | None = None) -> list[dict]:
    """JSON lines up to the first unreadable one (a run killed mid-write leaves a partial
    last line); `notes` receives a line saying where reading stopped."""
    records = []
    text = Path(path).read_bytes().decode(errors="replace")  # garbage: an unreadable line
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            records.append(record)
        except ValueError:
            if notes is not None:
                notes.append(f"{Path(path).name} line {number} unreadable; using the "
                             f"{len(records)} lines before it")
            break
    return records


def write_text(path: str | Path, text: str) -> None:
    """Atomic text write (UTF-8)."""
    write_atomically(path, text.encode())


class RunDirLocked(RuntimeError):
    """Another process writes this run directory; the message names it (host, pid, start)."""


LOCK_FILE = ".run.lock"
_held: dict[str, list] = {}  # real path -> [fd, depth]: re-entry from the holding process


def hold_run_lock(run_dir: str | Path, wait_s: float = 0.0) -> None:
    """Take the run directory's lock (an exclusive `flock` on RUN/.run.lock) until
    `release_run_lock` or the end of the process. The kernel drops a flock when its process
    dies, kill -9 included, so a lock is never stale. Re-entrant within one process. Another
    holder: retry for `wait_s` seconds, then RunDirLocked (nothing written)."""
    import fcntl
    import socket
    import sys
    import time
    from datetime import datetime, timezone

    key = os.path.realpath(run_dir)
    if key in _held:
        _held[key][1] += 1
        return
    os.makedirs(key, exist_ok=True)
    try:
        fd = os.open(os.path.join(key, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:  # a directory in its place, no permission, a read-only file system
        raise RunFileError(f"{os.path.join(key, LOCK_FILE)} cannot be opened for writing "
                           f"({err.strerror}); it must be a plain writable file: remove it (it "
                           "holds nothing but the lock), or write to another run directory"
                           ) from None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "starting up"
            os.close(fd)
            raise RunDirLocked(f"{key} is being written by another process ({holder}); wait "
                               "for it to end or stop it, or use another run directory") from None
        except OSError as err:  # e.g. Lustre mounted without -o flock: no lock to be had
            print(f"warning: {key} cannot be locked ({err.strerror}); nothing stops a second "
                  "writer there", file=sys.stderr)
            break
    since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"host {socket.gethostname()}, pid {os.getpid()}, since {since}\n".encode(), 0)
    _held[key] = [fd, 1]


def release_run_lock(run_dir: str | Path) -> None:
    key = os.path.realpath(run_dir)
    entry = _held[key]
    entry[1] -= 1
    if entry[1] == 0:
        del _held[key]
        os.close(entry[0])  # closing the only descriptor releases the flock


class RunLock:
    """`with RunLock(run_dir):` one trainer per run directory for the block (see
    `hold_run_lock`). Training holds it for the whole run. Readers (evaluation, probes,
    figures, experiments) never take it: they read complete checkpoints and write their own
    files atomically, so they neither wait for a trainer nor disturb it."""

    def __init__(self, run_dir: str | Path, wait_s: float = 0.0):
        self.run_dir, self.wait_s = run_dir, wait_s

    def __enter__(self) -> RunLock:
        hold_run_lock(self.run_dir, self.wait_s)
        return self

    def __exit__(self, *exc: object) -> None:
        release_run_lock(self.run_dir)


run_lock = RunLock
