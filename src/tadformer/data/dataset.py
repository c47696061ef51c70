"""One feature dataset for every ActivityNet-style dataset (official ``THUMOS14Dataset`` semantics).

Items follow SPEC §2.3: features are cast to float32, downsampled by ``downsample_rate``,
transposed to ``[C, T]``, and segments go from seconds to grid units in float32
(:func:`tadformer.segments.sec_to_grid`). In training, samples with ground truth go through
:func:`tadformer.data.transforms.random_truncate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from tadformer.data.features import FeatureError, ensure_finite, feature_path, load_features
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
        missing: ``"skip"`` drops videos whose feature file does not exist (official behaviour;
            their ids are in ``skipped_video_ids``); ``"error"`` raises :class:`FeatureError`.

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
    ) -> None:
        _check_config(cfg)
        if missing not in ("skip", "error"):
            raise ValueError(f"missing must be 'skip' or 'error', got {missing!r}")
        if not isinstance(cfg.feat_folder, str) or not cfg.feat_folder:
            raise ValueError(f"dataset.feat_folder must be one folder path, got {cfg.feat_folder!r}")
        if not isinstance(cfg.file_ext, str):
            raise ValueError(f"dataset.file_ext must be set (e.g. '.npy'), got {cfg.file_ext!r}")
        self.feat_folder: str = cfg.feat_folder
        self.file_ext: str = cfg.file_ext
        self.cfg = cfg
        self.is_training = is_training
        self.generator = generator
        self.expected_dim = int(cfg.input_dim) if isinstance(cfg.input_dim, int) else None
        if self.expected_dim is None:
            raise ValueError(f"dataset.input_dim must be an int for FeatureDataset, got {cfg.input_dim!r}")
        kept: list[VideoRecord] = []
        skipped: list[str] = []
        for rec in records:
            _check_labels(rec, cfg.num_classes)
            path = self.feature_path(rec.video_id)
            if path.is_file():
                kept.append(rec)
            elif missing == "error":
                raise FeatureError(
                    f"video {rec.video_id!r}: feature file {path} not found (the path is feat_folder / "
                    "(file_prefix or '') + video_id + file_ext)"
                )
            else:
                skipped.append(rec.video_id)
        self.records: tuple[VideoRecord, ...] = tuple(kept)
        self.skipped_video_ids: tuple[str, ...] = tuple(skipped)

    @property
    def feat_stride(self) -> int:
        """Frames per grid step after downsampling."""
        return int(self.cfg.feat_stride * self.cfg.downsample_rate)

    @property
    def offset_grid(self) -> float:
        """Clip-centre offset in grid units (2.0 for THUMOS I3D)."""
        return feat_offset_grid(self.cfg.num_frames, self.feat_stride)

    def feature_path(self, video_id: str) -> Path:
        """Where the features of ``video_id`` are read from."""
        return feature_path(self.feat_folder, video_id, self.cfg.file_prefix, self.file_ext)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> VideoSample:
        return self.load(index, self.generator)

    def load(self, index: int, generator: torch.Generator | None = None,
             crop_window: tuple[int, int] | None = None) -> VideoSample:
        """Item ``index``; in training, cropped with ``generator`` or at the given ``crop_window``.

        Training items carry the ``crop_window`` they hold (``(0, T)`` when not cropped), so a run's
        crops can be recorded and replayed; evaluation items carry None.
        """
        rec = self.records[index]
        path = self.feature_path(rec.video_id)
        feats_tc = load_features(path, self.expected_dim, rec.video_id, check_finite=False)
        # [T, C] -> float32, keep every k-th step, then [C, T] contiguous
        feats32 = np.asarray(feats_tc[:: self.cfg.downsample_rate], dtype=np.float32)
        ensure_finite(feats32, f"video {rec.video_id!r}: feature file {path}")
        feats = torch.from_numpy(np.ascontiguousarray(feats32.T))
        fps = float(self.cfg.default_fps) if self.cfg.default_fps is not None else rec.fps
        sample = VideoSample(
            video_id=rec.video_id,
            feats=feats,
            segments_grid=sec_to_grid(rec.segments_sec, fps, self.feat_stride, self.cfg.num_frames),
            labels=torch.from_numpy(rec.labels.astype(np.int64)),
            fps=fps,
            duration_sec=rec.duration_sec,
            feat_stride=self.feat_stride,
            feat_num_frames=int(self.cfg.num_frames),
        )
        if not self.is_training:
            return sample
        if rec.num_segments > 0:
            sample = random_truncate(
                sample,
                max_seq_len=self.cfg.max_seq_len,
                trunc_thresh=self.cfg.trunc_thresh,
                offset_grid=self.offset_grid,
                crop_ratio=self.cfg.crop_ratio,
                generator=generator,
                window=crop_window,
            )
        elif crop_window is not None and tuple(crop_window) != (0, sample.length):
            raise ValueError(f"video {rec.video_id!r} has no annotation, so it is never cropped; got crop window "
                             f"{list(crop_window)} (expected [0, {sample.length}])")
        if sample.crop_window is None:
            sample = dataclasses.replace(sample, crop_window=(0, sample.length))
        return sample


def _check_config(cfg: DatasetConfigLike) -> None:
    for name in ("feat_stride", "num_frames", "downsample_rate", "max_seq_len", "num_classes"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"dataset.{name} must be an int >= 1, got {value!r}")
    if cfg.crop_ratio is not None:
        lo, hi = cfg.crop_ratio
        if not 0 < lo <= hi:
            raise ValueError(f"dataset.crop_ratio must be (lo, hi) with 0 < lo <= hi, got {cfg.crop_ratio!r}")
    if cfg.force_upsampling:
        raise ValueError("dataset.force_upsampling (ActivityNet-style resizing) is not supported")


def _check_labels(rec: VideoRecord, num_classes: int) -> None:
    bad = (rec.labels < 0) | (rec.labels >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"video {rec.video_id!r}: annotation {i} has label {int(rec.labels[i])} "
            f"({rec.label_names[i]!r}), outside [0, num_classes={num_classes}); set dataset.num_classes to "
            "the number of classes of the annotation file, or fix its label_id"
        )
