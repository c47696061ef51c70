"""What ``train --resume`` continues from, so that the flag is safe to pass on every launch.

Cluster users re-launch the same command line after every pre-emption. With ``--resume``:

- the newest complete checkpoint of the run continues (``last.pth.tar``, else the latest
  ``epoch_XXX.pth.tar``);
- with none, training starts from scratch (the caller prints a one-line notice);
- temporary files left by saves that were killed before their rename are removed: they are never
  complete checkpoints (a save renames its temp file only after writing and syncing it).

A checkpoint that exists but cannot be loaded is *not* handled here: loading it raises, so a user's
progress is never silently discarded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LAST_CKPT = "last.pth.tar"
_EPOCH_CKPT = re.compile(r"epoch_(\d+)\.pth\.tar")
# ``atomic_torch_save`` writes ``.<name>.<pid>.<8 hex>.tmp`` next to its destination
_TEMP_FILE = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(ckpt_dir: Path) -> list[Path]:
    """Delete temp files of interrupted checkpoint saves in ``ckpt_dir``; return what was removed.

    A temp file whose writer process is still alive on this machine is left alone.
    """
    removed: list[Path] = []
    if not ckpt_dir.is_dir():
        return removed
    for path in sorted(ckpt_dir.iterdir()):
        match = _TEMP_FILE.fullmatch(path.name)
        if match is None or not path.is_file() or _pid_alive(int(match["pid"])):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def find_resume_checkpoint(ckpt_dir: Path) -> Path | None:
    """``last.pth.tar`` if present, else the ``epoch_XXX.pth.tar`` of the highest epoch, else None."""
    last = ckpt_dir / LAST_CKPT
    if last.is_file():
        return last
    epochs = [(int(m[1]), p) for p in ckpt_dir.glob("epoch_*.pth.tar") if (m := _EPOCH_CKPT.fullmatch(p.name))]
    return max(epochs)[1] if epochs else None
