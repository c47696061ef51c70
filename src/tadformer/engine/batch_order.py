"""A run's batch order: which videos (and which crop of each) every optimiser step trained on.

Every training run writes ``RUN_DIR/batch_order.json``; ``tadformer train --batch-order FILE`` replays
one, so a run can be repeated exactly, compared step by step with another implementation, or
bisected. Two input forms are accepted:

- a JSON list with one list of video ids per optimiser step (the global batch of the step:
  ``loader.batch_size x processes x loader.accum_steps`` ids); crops are then drawn as usual;
- the file a run writes::

    {"format": "tadformer-batch-order", "version": 1, "step_batch_size": 2, "steps_per_epoch": 8,
     "steps": [["vid_a", "vid_b"], ...],
     "crop_windows": [[[0, 576], [120, 696]], ...]}

  where ``crop_windows[k][j]`` is the ``[start, end)`` feature-step window that video j of step k
  held (``[0, T]`` when it was not cropped). Replaying it applies those windows and draws nothing.

Epoch boundaries follow from the loader's steps per epoch: step k belongs to epoch
``k // steps_per_epoch``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tadformer.results_io import atomic_write_text, read_json

BATCH_ORDER_FILE = "batch_order.json"
FORMAT_NAME = "tadformer-batch-order"
FORMAT_VERSION = 1

Window = tuple[int, int]


class BatchOrderError(ValueError):
    """A batch-order file is malformed or does not fit the run (the message names the step)."""


@dataclass(frozen=True)
class BatchOrder:
    """Video ids per optimiser step, and optionally the crop window of each."""

    steps: tuple[tuple[str, ...], ...]
    crop_windows: tuple[tuple[Window, ...], ...] | None = None

    def __len__(self) -> int:
        return len(self.steps)


def _window(value: Any, where: str) -> Window:
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise BatchOrderError(f"{where}: a crop window must be [start, end] (two integers), got {value!r}")
    return int(value[0]), int(value[1])


def parse_batch_order(data: Any, source: str = "batch order") -> BatchOrder:
    """Read either accepted form (see the module docstring) into a :class:`BatchOrder`."""
    windows_raw = None
    if isinstance(data, Mapping):
        if "steps" not in data:
            raise BatchOrderError(f"{source}: expected a list of steps or an object with 'steps'; "
                                  f"got keys {sorted(map(str, data))[:10]}")
        steps_raw, windows_raw = data["steps"], data.get("crop_windows")
    else:
        steps_raw = data
    if not isinstance(steps_raw, list):
        raise BatchOrderError(f"{source}: expected a JSON list with one list of video ids per optimiser step, "
                              f"got {type(steps_raw).__name__}")
    steps = []
    for k, step in enumerate(steps_raw):
        if not isinstance(step, list) or not all(isinstance(v, str) for v in step):
            raise BatchOrderError(f"{source}: step {k} must be a list of video ids (strings), got {step!r}"[:300])
        steps.append(tuple(step))
    windows = None
    if windows_raw is not None:
        if not isinstance(windows_raw, list) or len(windows_raw) != len(steps):
            raise BatchOrderError(f"{source}: 'crop_windows' must hold one list per step ({len(steps)})")
        windows = []
        for k, (step, row) in enumerate(zip(steps, windows_raw)):
            if not isinstance(row, list) or len(row) != len(step):
                raise BatchOrderError(f"{source}: step {k}: 'crop_windows' needs one window per video "
                                      f"({len(step)}), got {row!r}"[:300])
            windows.append(tuple(_window(w, f"{source}: step {k}, video {step[j]!r}") for j, w in enumerate(row)))
    return BatchOrder(tuple(steps), tuple(windows) if windows is not None else None)


def read_batch_order(path: str | Path) -> BatchOrder:
    """Parse a batch-order JSON file.

    Raises:
        FileNotFoundError: no such file.
        BatchOrderError: not JSON, or not one of the accepted forms.
    """
    return parse_batch_order(read_json(path, "batch order file", BatchOrderError), str(path))


def resolve_batch_order(order: BatchOrder, video_ids: Sequence[str], step_batch_size: int, num_steps: int,
                        source: str = "batch order") -> list[list[int]]:
    """Check ``order`` against the run and map its ids to dataset indices.

    Args:
        order: the parsed order.
        video_ids: the training dataset's video ids (index order).
        step_batch_size: videos per optimiser step (global batch).
        num_steps: optimiser steps the run needs.

    Returns:
        ``[num_steps][step_batch_size]`` dataset indices.

    Raises:
        BatchOrderError: an unknown video, a step of the wrong size, or too few steps (the first
            offending step is named).
    """
    lookup = {vid: i for i, vid in enumerate(video_ids)}
    if len(order) < num_steps:
        raise BatchOrderError(f"{source}: has {len(order)} steps but the run needs {num_steps}; step "
                              f"{len(order)} is missing (epochs x steps per epoch, or --max-steps)")
    out = []
    for k, step in enumerate(order.steps[:num_steps]):
        if len(step) != step_batch_size:
            raise BatchOrderError(f"{source}: step {k} has {len(step)} videos, expected {step_batch_size} "
                                  "(loader.batch_size x processes x loader.accum_steps)")
        unknown = [vid for vid in step if vid not in lookup]
        if unknown:
            raise BatchOrderError(f"{source}: step {k} names video(s) {unknown} that are not in the training split "
                                  "(or have no feature file)")
        out.append([lookup[vid] for vid in step])
    return out


def write_batch_order(path: Path, steps: Sequence[Sequence[str]], windows: Sequence[Sequence[Window]],
                      step_batch_size: int, steps_per_epoch: int) -> None:
    """Write a run's order (the replayable form) atomically."""
    payload = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "step_batch_size": step_batch_size,
        "steps_per_epoch": steps_per_epoch, "steps": [list(s) for s in steps],
        "crop_windows": [[list(w) for w in row] for row in windows],
    }
    atomic_write_text(path, json.dumps(payload, separators=(",", ":")) + "\n")
