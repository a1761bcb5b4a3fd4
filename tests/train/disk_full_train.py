"""`python tests/train/disk_full_train.py STEP [training overrides]`: the training app with a
disk that fills up while the checkpoint of STEP is being saved (every write of that save fails
with ENOSPC), for the tests that check what the command prints."""

import errno
import os
import sys

from orbax.checkpoint._src.path import async_path

STEP = sys.argv.pop(1)
_write_text = async_path.write_text


async def _disk_full(path, text):
    if f"{STEP}.orbax-checkpoint-tmp" in str(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return await _write_text(path, text)


async_path.write_text = _disk_full

if __name__ == "__main__":
    from icl_regression.train.app import main

    main()
