"""One feature dataset for every ActivityNet-style dataset (official ``THUMOS14Dataset`` semantics).

Items follow SPEC §2.3: features are cast to float32, downsampled by ``downsample_rate``,
transposed to ``[C, T]``, and segments go from seconds to grid units in float32
(:func:`tadformer.segments.sec_to_grid`). In training, samples with ground truth go through
:func:`tadformer.data.transforms.random_truncate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tadformer.data.features import FeatureError, ensure_finite
from tadformer.data.rules import DatasetRules
from tadformer.data.sources import expected_dims, feat_folders, has_features, is_hdf5, read_features, source_path
from tadformer.data.transforms import random_truncate
from tadformer.data.types import DatasetConfigLike, VideoRecord, VideoSample
from tadformer.segments import feat_offset_grid, sec_to_grid


class FeatureDataset(Dataset[VideoSample]):
    """Pre-extracted features + annotations -> :class:`VideoSample` items.

    Args:
        records: videos to serve (e.g. ``read_annotations(...).videos``).
        cfg: dataset config (official field names; see :class:`DatasetConfigLike`).
        is_training: apply random truncation (training) or not (evaluation).
        generator: randomness for truncation. None uses torch's global RNG, which a DataLoader
            seeds differently in each worker: use None with ``num_workers > 0`` (a Generator
            object would be copied into every worker with the same state and repeat crops).
        missing: ``"skip"`` drops videos without features (official behaviour; with several feature
            folders, a video missing from any of them; their ids are in ``skipped_video_ids``);
            ``"error"`` raises :class:`FeatureError`.
        rules: the benchmark's differences (:func:`tadformer.data.rules.rules_for`); THUMOS14 by default.

    With ``num_classes == 1`` every label becomes 0 (class-agnostic training, as official).

    Raises:
        ValueError: bad config values, or a record label outside ``[0, num_classes)``.
        FeatureError: a missing feature file with ``missing="error"``.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        cfg: DatasetConfigLike,
        is_training: bool,
        generator: torch.Generator | None = None,
        missing: Literal["skip", "error"] = "skip",
        rules: DatasetRules | None = None,
    ) -> None:
        _check_config(cfg)
        if missing not in ("skip", "error"):
            raise ValueError(f"missing must be 'skip' or 'error', got {missing!r}")
        self.folders = feat_folders(cfg.feat_folder)
        if not any(is_hdf5(f) for f in self.folders) and not isinstance(cfg.file_ext, str):
            raise ValueError(f"dataset.file_ext must be set (e.g. '.npy'), got {cfg.file_ext!r}")
        self.dims = expected_dims(cfg.input_dim, len(self.folders))
        self.cfg = cfg
        self.rules = rules or DatasetRules()
        self.is_training = is_training
        self.generator = generator
        kept: list[VideoRecord] = []
        skipped: list[str] = []
        for rec in records:
            if cfg.num_classes == 1:
                rec = dataclasses.replace(rec, labels=np.zeros_like(rec.labels))
            _check_labels(rec, cfg.num_classes)
            if has_features(self.folders, rec.video_id, cfg.file_prefix, cfg.file_ext):
                kept.append(rec)
            elif missing == "error":
                raise FeatureError(
                    f"video {rec.video_id!r}: feature file {self.feature_path(rec.video_id)} not found (the path "
                    "is feat_folder / (file_prefix or '') + video_id + file_ext)"
                )
            else:
                skipped.append(rec.video_id)
        self.records: tuple[VideoRecord, ...] = tuple(kept)
        self.skipped_video_ids: tuple[str, ...] = tuple(skipped)

    @property
    def offset_grid(self) -> float:
        """Clip-centre offset in grid units (2.0 for THUMOS I3D, 0.5 for resized features): the same for
        every video of the dataset (:func:`grid_of`)."""
        return grid_of(1, self.cfg).offset

    def feature_path(self, video_id: str) -> Path:
        """Where the features of ``video_id`` are read from (the first folder's file, or the HDF5 store)."""
        return source_path(self.folders[0], video_id, self.cfg.file_prefix, self.cfg.file_ext)

    def read_features(self, video_id: str) -> np.ndarray:
        """The stored ``[T, C]`` features of ``video_id`` (every folder, concatenated; not cast)."""
        total = self.cfg.input_dim if isinstance(self.cfg.input_dim, int) else None
        return read_features(self.folders, video_id, self.cfg.file_prefix, self.cfg.file_ext, self.dims, total)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> VideoSample:
        return self.load(index, self.generator)

    def load(self, index: int, generator: torch.Generator | None = None,
             crop_window: tuple[int, int] | None = None,
             randint: Callable[[int, int], int] | None = None) -> VideoSample:
        """Item ``index``; in training, cropped with ``generator`` (or ``randint``), or at ``crop_window``.

        Training items carry the ``crop_window`` they hold (``(0, T)`` when not cropped), so a run's
        crops can be recorded and replayed; evaluation items carry None.
        """
        rec = self.records[index]
        path = self.feature_path(rec.video_id)
        feats, grid = prepare_features(self.read_features(rec.video_id), self.cfg,
                                       f"video {rec.video_id!r}: feature file {path}")
        fps = float(self.cfg.default_fps) if self.cfg.default_fps is not None else rec.fps
        segments = sec_to_grid(rec.segments_sec, fps, grid.stride, grid.num_frames)
        labels = torch.from_numpy(rec.labels.astype(np.int64))
        if self.is_training and self.rules.fix_missing_frames and rec.num_segments > 0:
            segments, labels = fix_missing_frames(segments, labels, feats.shape[1] + grid.offset,
                                                  self.cfg.trunc_thresh, rec.video_id)
        sample = VideoSample(
            video_id=rec.video_id, feats=feats, segments_grid=segments, labels=labels, fps=fps,
            duration_sec=rec.duration_sec, feat_stride=grid.stride, feat_num_frames=grid.num_frames,
        )
        if not self.is_training:
            return sample
        if rec.num_segments > 0:
            sample = random_truncate(
                sample,
                max_seq_len=self.cfg.max_seq_len,
                trunc_thresh=self.cfg.trunc_thresh,
                offset_grid=grid.offset,
                crop_ratio=self.cfg.crop_ratio,
                generator=generator,
                window=crop_window,
                randint=randint,
            )
        elif crop_window is not None and tuple(crop_window) != (0, sample.length):
            raise ValueError(f"video {rec.video_id!r} has no annotation, so it is never cropped; got crop window "
                             f"{list(crop_window)} (expected [0, {sample.length}])")
        if sample.crop_window is None:
            sample = dataclasses.replace(sample, crop_window=(0, sample.length))
        return sample


def prepare_features(feats_tc: np.ndarray, cfg: DatasetConfigLike, where: str) -> tuple[torch.Tensor, Grid]:
    """Stored ``[T, C]`` features -> the network's ``[C, T']`` float32 input and its grid.

    ``T' = T / downsample_rate`` steps, or ``max_seq_len`` for resized features (torch's linear
    interpolation with ``align_corners=False``, as official; nothing is resized when T already equals it).

    Raises:
        FeatureError: NaN/Inf values (``where`` names the file).
    """
    grid = grid_of(feats_tc.shape[0], cfg)
    if not cfg.force_upsampling:  # [T, C] -> keep every k-th step
        feats_tc = feats_tc[:: cfg.downsample_rate]
    feats32 = np.asarray(feats_tc, dtype=np.float32)
    ensure_finite(feats32, where)
    feats = torch.from_numpy(np.ascontiguousarray(feats32.T))  # [C, T]
    if cfg.force_upsampling and feats.shape[1] != cfg.max_seq_len:
        feats = F.interpolate(feats[None], size=cfg.max_seq_len, mode="linear", align_corners=False)[0]  # [C, L]
    return feats, grid


@dataclasses.dataclass(frozen=True)
class Grid:
    """The feature grid of one video: frames per step, frames per clip, clip-centre offset (grid units)."""

    stride: float
    num_frames: float
    offset: float


def grid_of(num_steps: int, cfg: DatasetConfigLike) -> Grid:
    """The grid of a video with ``num_steps`` stored features (official dataset rule).

    Resized (``force_upsampling``) features span ``(T - 1) * feat_stride + num_frames`` frames spread
    over ``max_seq_len`` steps: the stride is that over ``max_seq_len`` (a float), the clip as long as a
    step, so the offset is 0.5. Otherwise the stride is ``feat_stride * downsample_rate``.
    """
    if cfg.force_upsampling:
        stride = float((num_steps - 1) * cfg.feat_stride + cfg.num_frames) / cfg.max_seq_len
        return Grid(stride, stride, feat_offset_grid(stride, stride))
    stride_int = int(cfg.feat_stride * cfg.downsample_rate)
    return Grid(stride_int, int(cfg.num_frames), feat_offset_grid(cfg.num_frames, stride_int))


def fix_missing_frames(segments: torch.Tensor, labels: torch.Tensor, grid_end: float, min_share: float,
                       video_id: str) -> tuple[torch.Tensor, torch.Tensor]:
    """ActivityNet training: drop segments starting at or after ``grid_end`` (last step + offset) or with
    less than ``min_share`` of their length before it; clamp the ends of the rest to ``grid_end``.

    Raises:
        ValueError: no segment survives (naming the video): it cannot be trained on.
    """
    keep = []
    for i, (start, end) in enumerate(segments.tolist()):
        if start >= grid_end:
            continue
        if (min(end, grid_end) - start) / (end - start) >= min_share:
            keep.append(i)
    if not keep:
        raise ValueError(f"video {video_id!r}: every annotation lies (mostly) past the end of its features "
                         f"({grid_end} grid steps): remove the video from the training split or fix its features")
    idx = torch.tensor(keep, dtype=torch.int64)
    return segments[idx].clamp(max=grid_end), labels[idx]


def _check_config(cfg: DatasetConfigLike) -> None:
    for name in ("feat_stride", "num_frames", "downsample_rate", "max_seq_len", "num_classes"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"dataset.{name} must be an int >= 1, got {value!r}")
    if cfg.crop_ratio is not None:
        lo, hi = cfg.crop_ratio
        if not 0 < lo <= hi:
            raise ValueError(f"dataset.crop_ratio must be (lo, hi) with 0 < lo <= hi, got {cfg.crop_ratio!r}")


def _check_labels(rec: VideoRecord, num_classes: int) -> None:
    bad = (rec.labels < 0) | (rec.labels >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"video {rec.video_id!r}: annotation {i} has label {int(rec.labels[i])} "
            f"({rec.label_names[i]!r}), outside [0, num_classes={num_classes}); set dataset.num_classes to "
            "the number of classes of the annotation file, or fix its label_id"
        )
