"""Every output file is all-or-nothing: a failure at any point of a write (disk full during the write, the
fsync or the rename) leaves the previous file byte-identical and no temp file behind."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import tadformer.engine.checkpoint as checkpoint_mod
from tadformer.data.types import VideoMeta
from tadformer.engine.checkpoint import CheckpointWriteError, load_checkpoint, save_checkpoint
from tadformer.engine.evaluate import RawOutputs, RawVideoOutput
from tadformer.postprocess import Detections
from tadformer.results_io import write_results_csv, write_results_json


def _full(*_: Any, **__: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _detections(score: float) -> list[Detections]:
    return [Detections("v1", torch.tensor([[1.0, 2.0]]), torch.tensor([score]), torch.tensor([3]))]


def _raw(n: int) -> RawOutputs:
    meta = VideoMeta(video_id="v1", fps=30.0, duration_sec=10.0, feat_stride=4, feat_num_frames=16, length=n)
    return RawOutputs([RawVideoOutput(meta, [torch.zeros(n, 2)], [torch.zeros(n, 2)])], (1,), ((0.0, 1e4),),
                      ("a", "b"))


WRITERS: dict[str, Callable[[Path, int], Any]] = {
    "results_json": lambda p, i: write_results_json(p, _detections(0.1 * i)),
    "results_csv": lambda p, i: write_results_csv(p, _detections(0.1 * i)),
    "raw_outputs": lambda p, i: _raw(3 + i).save(p),
    "checkpoint": lambda p, i: save_checkpoint(p, model=nn.Linear(2, 2 + i), ema=None, optimizer=None,
                                               scheduler=None, epoch=i),
}


class _DiskFillsUp:
    """A file handle whose first ``write`` stores half of the data, then fails with ENOSPC."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: Any) -> int:
        self._handle.write(data[: len(data) // 2])
        _full()
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _DiskFillsUp:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def _fill_disk_during_write(monkeypatch: pytest.MonkeyPatch) -> None:
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _DiskFillsUp(real_fdopen(fd, *a, **k)))  # text files
    monkeypatch.setattr(checkpoint_mod, "open", lambda *a, **k: _DiskFillsUp(open(*a, **k)), raising=False)


@pytest.mark.parametrize("failing", ["write", "os.fsync", "os.replace"])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_failed_write_keeps_previous_file(kind: str, failing: str, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / f"out.{kind}"
    WRITERS[kind](path, 1)
    before = path.read_bytes()
    if failing == "write":
        _fill_disk_during_write(monkeypatch)
    else:
        monkeypatch.setattr(failing, _full)
    with pytest.raises(OSError, match="No space left on device"):
        WRITERS[kind](path, 2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    if kind == "checkpoint":
        assert load_checkpoint(path)["epoch"] == 1


def test_checkpoint_write_error_says_the_disk_is_full(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "fsync", _full)
    with pytest.raises(CheckpointWriteError, match=r"could not write checkpoint .*ckpt.pth.tar.*disk is full"):
        save_checkpoint(tmp_path / "ckpt.pth.tar", model=nn.Linear(2, 2), ema=None, optimizer=None, scheduler=None,
                        epoch=0)
