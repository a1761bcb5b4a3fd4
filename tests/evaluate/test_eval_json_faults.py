"""eval.json / probes.json survive a writer killed mid-write or failing before the rename."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from icl_regression.evaluate import eval_json
from icl_regression.storage import write_atomically

# What evaluation and probes call to write their file, with validation out of the way.
WRITERS = {"eval.json": "from icl_regression.evaluate import eval_json as m; "
                        "m.validate_eval_json = lambda d: d; write = m.write_eval_json",
           "probes.json": "from icl_regression.storage import write_atomically as w; "
                          "write = lambda p, d: w(p, repr(d).encode())"}

STALL_IN_RENAME = ("import os, sys, time; os.replace = lambda *a: time.sleep(600); {writer}; "
                   "print('writing', flush=True); write(sys.argv[1], {{'new': 'x' * 10**6}})")


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_killed_while_writing_leaves_the_previous_file(name, tmp_path):
    path = tmp_path / name
    path.write_text('{"previous": true}\n')
    code = STALL_IN_RENAME.format(writer=WRITERS[name])
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    deadline = time.time() + 30
    while time.time() < deadline and not any(  # the new content is on disk, not yet renamed
            p.name.startswith(f".{name}.") and p.stat().st_size > 10**6
            for p in tmp_path.iterdir()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert path.read_text() == '{"previous": true}\n'


def test_a_failure_between_write_and_rename_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "eval.json"
    path.write_text('{"previous": true}\n')

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(os, "replace", disk_full)
    monkeypatch.setattr(eval_json, "validate_eval_json", lambda data: data)
    with pytest.raises(OSError, match="No space left"):
        eval_json.write_eval_json(path, {"new": 1})
    with pytest.raises(OSError, match="No space left"):
        write_atomically(tmp_path / "probes.json", b"{}")
    assert path.read_text() == '{"previous": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json"]  # no temp, no lock
