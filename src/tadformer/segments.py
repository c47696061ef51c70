"""Pure operations on temporal segments, and the one place that converts seconds <-> grid.

Units are carried in names: ``*_sec`` are seconds, ``*_grid`` are feature-grid steps
(one step = ``feat_stride`` frames). Segments are ``[N, 2]`` tensors of (start, end).

The conversion mirrors the official ``THUMOS14Dataset.__getitem__`` (seconds -> grid) and
``PtTransformer.postprocessing`` (grid -> seconds), computed in float32 in the same order so
the numbers are bit-identical.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def feat_offset_grid(num_frames: float, feat_stride: float) -> float:
    """Offset of a feature's clip centre from its first frame, in grid units (2.0 for 16/4)."""
    return 0.5 * num_frames / feat_stride


def sec_to_grid(segments_sec: Tensor | np.ndarray, fps: float, feat_stride: float, num_frames: float) -> Tensor:
    """Convert ``[N, 2]`` segments from seconds to feature-grid units (float32).

    ``grid = seconds * fps / feat_stride - 0.5 * num_frames / feat_stride``; feature ``i`` is
    centred on frame ``feat_stride * i + num_frames / 2``. Computed in float32 as
    ``(sec * fps) / stride - offset`` so values match the official dataset exactly.
    """
    sec = torch.as_tensor(np.asarray(segments_sec, dtype=np.float32) if isinstance(segments_sec, np.ndarray)
                          else segments_sec, dtype=torch.float32)
    fps32 = torch.tensor(fps, dtype=torch.float32)
    offset = torch.tensor(feat_offset_grid(num_frames, feat_stride), dtype=torch.float32)
    return (sec * fps32) / torch.tensor(float(feat_stride), dtype=torch.float32) - offset


def grid_to_sec(
    segments_grid: Tensor, fps: float, feat_stride: float, num_frames: float, duration_sec: float | None = None
) -> Tensor:
    """Convert ``[N, 2]`` grid segments back to seconds, the exact inverse of :func:`sec_to_grid`.

    ``seconds = (grid * feat_stride + 0.5 * num_frames) / fps`` in float32, then (when
    ``duration_sec`` is given) clamped to ``[0, duration_sec]`` the official way: values <= 0 are
    multiplied by 0.0 (a negative start becomes -0.0) and values >= duration become duration.
    """
    grid = segments_grid.to(torch.float32)
    sec = (grid * float(feat_stride) + 0.5 * num_frames) / torch.tensor(fps, dtype=torch.float32)
    if duration_sec is None:
        return sec
    sec = torch.where(sec <= 0, sec * 0.0, sec)
    dur = torch.tensor(duration_sec, dtype=torch.float32)
    return torch.where(sec >= dur, dur, sec)


def lengths(segments: Tensor) -> Tensor:
    """``[N, 2] -> [N]`` segment lengths (end - start)."""
    return segments[..., 1] - segments[..., 0]


def pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """Temporal IoU between every pair: ``[N, 2] x [M, 2] -> [N, M]`` (0 where the union is 0)."""
    left = torch.maximum(a[:, None, 0], b[None, :, 0])
    right = torch.minimum(a[:, None, 1], b[None, :, 1])
    inter = (right - left).clamp(min=0)
    union = lengths(a)[:, None] + lengths(b)[None, :] - inter
    safe = union.clamp(min=torch.finfo(union.dtype).tiny)
    return torch.where(union > 0, inter / safe, torch.zeros_like(inter))
