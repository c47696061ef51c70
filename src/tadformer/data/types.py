"""Data types flowing through the input pipeline: annotation -> sample -> padded batch.

``VideoRecord`` is one video of the annotation json (seconds), ``VideoSample`` is one dataset item
(features and segments on the feature grid), ``Batch`` is what the model consumes (padded features
and a validity mask). ``DatasetConfigLike`` is the subset of ``tadformer.config.DatasetConfig`` the
dataset reads, typed structurally so this package does not import the config module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor


class DatasetConfigLike(Protocol):
    """Any object with the official ``dataset`` config fields (e.g. ``tadformer.config.DatasetConfig``)."""

    @property
    def feat_stride(self) -> int: ...  # frames between consecutive features (4 for THUMOS I3D)
    @property
    def num_frames(self) -> int: ...  # frames seen by one feature clip (16)
    @property
    def default_fps(self) -> float | None: ...  # overrides the per-video json fps when set
    @property
    def input_dim(self) -> int | Sequence[int]: ...  # feature channels C
    @property
    def num_classes(self) -> int: ...
    @property
    def downsample_rate(self) -> int: ...  # keep every k-th feature
    @property
    def max_seq_len(self) -> int: ...  # training crop length, in grid steps
    @property
    def trunc_thresh(self) -> float: ...  # min kept fraction of a cropped segment
    @property
    def crop_ratio(self) -> Sequence[float] | None: ...  # (lo, hi) random crop fraction, or None
    @property
    def force_upsampling(self) -> bool: ...
    @property
    def feat_folder(self) -> str | Sequence[str] | None: ...  # must be one folder for FeatureDataset
    @property
    def file_prefix(self) -> str | None: ...
    @property
    def file_ext(self) -> str | None: ...  # must be set for FeatureDataset


@dataclass(frozen=True, eq=False)
class VideoRecord:
    """One video of the annotation file, times in seconds.

    Attributes:
        video_id: key of the video in the json ``database``.
        subset: the json ``subset`` string as written (e.g. ``"Validation"``).
        fps: frames per second used for the grid conversion (json value, or ``default_fps``).
        duration_sec: video duration in seconds (1e8 when the json has none, as official).
        segments_sec: ``[N, 2]`` float64 (start, end) in seconds, exactly as parsed from the json;
            the dataset rounds them to float32 before converting, like the official code.
            ``[0, 2]`` when the video has no annotation.
        labels: ``[N]`` int64 class ids.
        label_names: ``N`` class names, in annotation order.
    """

    video_id: str
    subset: str
    fps: float
    duration_sec: float
    segments_sec: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]

    @property
    def num_segments(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True, eq=False)
class VideoSample:
    """One dataset item: features and ground truth on the feature grid.

    Attributes:
        video_id: video key.
        feats: ``[C, T]`` float32 features (contiguous).
        segments_grid: ``[N, 2]`` float32 (start, end) in grid units; ``[0, 2]`` when no annotation.
        labels: ``[N]`` int64 class ids.
        fps: frames per second (as a Python float).
        duration_sec: video duration in seconds.
        feat_stride: frames per grid step, after downsampling (``feat_stride * downsample_rate``); a
            float for resized features (ActivityNet: ``16 T / 192``).
        feat_num_frames: frames per feature clip (equal to the stride for resized features).
        crop_window: ``(start, end)`` grid steps of the video that ``feats`` holds: ``(0, T)`` for a
            whole training item, the window for a cropped one, None for evaluation items.
    """

    video_id: str
    feats: Tensor
    segments_grid: Tensor
    labels: Tensor
    fps: float
    duration_sec: float
    feat_stride: float
    feat_num_frames: float
    crop_window: tuple[int, int] | None = None

    @property
    def length(self) -> int:
        """Number of feature steps T."""
        return int(self.feats.shape[1])


@dataclass(frozen=True)
class VideoMeta:
    """Per-video information kept beside a padded batch (needed to map predictions back to seconds)."""

    video_id: str
    fps: float
    duration_sec: float
    feat_stride: float  # frames per grid step (an int except for resized features, e.g. ActivityNet)
    feat_num_frames: float  # frames per feature clip
    length: int  # valid feature steps T (before padding)
    crop_window: tuple[int, int] | None = None  # training: (start, end) steps of the video in this item


@dataclass(frozen=True, eq=False)
class Batch:
    """A padded batch of videos.

    Attributes:
        feats: ``[B, C, T_pad]`` float32, zero at padded steps.
        mask: ``[B, T_pad]`` bool, True at valid steps (``arange(T_pad) < length``).
        segments_grid: B tensors ``[N_i, 2]`` float32, grid units.
        labels: B tensors ``[N_i]`` int64.
        metas: B :class:`VideoMeta`.
    """

    feats: Tensor
    mask: Tensor
    segments_grid: list[Tensor]
    labels: list[Tensor]
    metas: list[VideoMeta]

    @property
    def lengths(self) -> Tensor:
        """``[B]`` int64 valid lengths (on the CPU)."""
        return torch.tensor([m.length for m in self.metas], dtype=torch.int64)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Return a copy with every tensor moved to ``device`` (metas are shared)."""
        return dataclasses.replace(
            self,
            feats=self.feats.to(device, non_blocking=non_blocking),
            mask=self.mask.to(device, non_blocking=non_blocking),
            segments_grid=[s.to(device, non_blocking=non_blocking) for s in self.segments_grid],
            labels=[lab.to(device, non_blocking=non_blocking) for lab in self.labels],
        )

    def __len__(self) -> int:
        return int(self.feats.shape[0])
