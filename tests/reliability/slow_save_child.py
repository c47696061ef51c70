"""``python slow_save_child.py ARGS``: the tadformer CLI with checkpoint fsyncs slowed down.

The kill tests run this instead of ``python -m tadformer`` when they want to SIGKILL the process
while a checkpoint is being written: from the ``SLOW_FSYNC_FROM``-th checkpoint save on (default 1),
``os.fsync`` of a ``*.tmp`` file under ``checkpoints/`` first sleeps ``SLOW_FSYNC_SEC`` seconds
(default 60), so the temp file sits there, fully written but not yet renamed, until the test
kills the process. Linux only (``/proc/self/fd``).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tadformer.cli import main

_real_fsync = os.fsync
_saves = {"n": 0}


def _slow_fsync(fd: Any) -> None:
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        name = ""
    if name.endswith(".tmp") and f"{os.sep}checkpoints{os.sep}" in name:
        _saves["n"] += 1
        if _saves["n"] >= int(os.environ.get("SLOW_FSYNC_FROM", "1")):
            time.sleep(float(os.environ.get("SLOW_FSYNC_SEC", "60")))
    _real_fsync(fd)


if __name__ == "__main__":
    os.fsync = _slow_fsync
    sys.exit(main(sys.argv[1:]))
