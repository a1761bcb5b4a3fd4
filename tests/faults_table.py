"""The fault table: every file of a run directory x every damage x every app, the outcome each
case must have, and the markdown of docs/reliability.md generated from it.

    python tests/faults_table.py     # rewrite the table in docs/reliability.md

test_run_faults.py runs every case and checks the outcome written here; test_docs_table there
checks that docs/reliability.md shows this very table.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
BEGIN, END = "<!-- fault table: begin -->", "<!-- fault table: end -->"

# file -> its path in the run directory (a glob matching exactly one file); step 20 is the
# newest checkpoint of the run the table damages (checkpoints 5, 10, 15, 20).
FILES = {
    "config.json": "config.json",
    "metrics.jsonl": "metrics.jsonl",
    "checkpoint data": "checkpoints/20/default/d/*",
    "checkpoint array metadata": "checkpoints/20/default/_METADATA",
    "checkpoint manifest": "checkpoints/20/default/manifest.ocdbt",
    "checkpoint record": "checkpoints/20/_CHECKPOINT_METADATA",
    "eval.json": "eval.json",
    "probes.json": "probes.json",
    "layerwise.json": "layerwise.json",
    "attention.npz": "attention.npz",
    "experiment record": "experiments/scale.json",
    "lock file": ".run.lock",
}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _garbage(path: Path) -> None:
    size = max(path.stat().st_size, 64)
    path.write_bytes(bytes((i * 7919 + 13) % 256 for i in range(size)))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _delete(path: Path) -> None:
    path.unlink()


def _unreadable(path: Path) -> None:
    """Root reads any file whatever its mode, so "unreadable" is a directory in the file's
    place: every open() of it fails (IsADirectoryError), as a permission error would."""
    path.unlink()
    path.mkdir()
    (path / "x").write_text("x")


DAMAGES = {"truncated": _truncate, "garbage": _garbage, "emptied": _empty, "deleted": _delete,
           "unreadable": _unreadable}
APPS = ("train", "evaluate", "probes", "figures", "experiments")


def damaged_path(run_dir: Path, file: str) -> Path:
    (path,) = glob.glob(str(run_dir / FILES[file]))
    return Path(path)


def expected(file: str, damage: str, app: str) -> str:
    """"ok": the app does its job (ignoring, recomputing or recovering the file, with at most
    a warning line); "error": one `error:` line naming the file, exit code 2. Only a trainer
    needs the lock file, and a directory in its place cannot be locked."""
    if app == "train" and file == "lock file" and damage == "unreadable":
        return "error"
    return "ok"


def cases() -> list[tuple[str, str, str]]:
    return [(f, d, a) for f in FILES for d in DAMAGES for a in APPS]


def fast_cases() -> set[tuple[str, str, str]]:
    """The cases of the default test run: each file once, its app and damage rotating so that
    every app and every damage comes up (the default suite's time budget); the slow run
    (-m slow, as CI runs it) runs all of them."""
    damages, apps = list(DAMAGES), list(APPS)
    return {(f, damages[(i + i // len(apps)) % len(damages)], apps[i % len(apps)])
            for i, f in enumerate(FILES)}


def render() -> str:
    """The markdown table: one row per file, one column per app, the outcome of each damage."""
    all_cases = cases()
    errors = sum(expected(*c) == "error" for c in all_cases)
    lines = [f"{len(FILES)} files x {len(DAMAGES)} damages ({', '.join(DAMAGES)}) x "
             f"{len(APPS)} apps = **{len(all_cases)} cases**: {len(all_cases) - errors} end in "
             f"success, {errors} in one `error:` line and exit code 2; in every case nothing "
             "intact is lost or overwritten, and no traceback is printed.", "",
             "| file | " + " | ".join(APPS) + " |", "|---" * (len(APPS) + 1) + "|"]
    for file in FILES:
        cells = []
        for app in APPS:
            bad = [d for d in DAMAGES if expected(file, d, app) == "error"]
            cells.append("ok" if not bad else f"ok; {', '.join(bad)}: one-line error")
        label = f"`{file}`" if FILES[file] == file else f"{file}: `{FILES[file]}`"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_doc() -> None:
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{render()}\n{END}{tail}")


if __name__ == "__main__":
    write_doc()
    print(f"wrote the table ({len(cases())} cases) into {os.path.relpath(DOC)}", file=sys.stderr)
