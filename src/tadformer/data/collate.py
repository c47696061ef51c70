"""Pad samples into a :class:`Batch` (official ``PtTransformer.preprocessing``, SPEC §3).

Training pads every video to exactly ``max_seq_len``. Evaluation pads to ``max_seq_len`` when the
longest video fits, else to the next multiple of ``max_div_factor`` (the official code allows one
video per batch; here any B >= 1 is padded to the length the longest video needs). Padding is
0.0, and ``mask = arange(T_pad) < length``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from tadformer.data.types import Batch, VideoMeta, VideoSample


def padded_length(num_steps: int, max_seq_len: int, max_div_factor: int) -> int:
    """Evaluation padded length: ``max_seq_len`` if ``T <= max_seq_len`` else ``ceil(T / f) * f``."""
    if num_steps <= max_seq_len:
        return max_seq_len
    return math.ceil(num_steps / max_div_factor) * max_div_factor


def collate_train(samples: Sequence[VideoSample], max_seq_len: int) -> Batch:
    """Pad training samples to ``[B, C, max_seq_len]``.

    Raises:
        ValueError: empty batch, mismatched channels, or a sample longer than ``max_seq_len``
            (training samples must have been truncated first).
    """
    _check_samples(samples)
    for s in samples:
        if s.length > max_seq_len:
            raise ValueError(
                f"video {s.video_id!r}: training sample has T={s.length} > max_seq_len={max_seq_len} feature "
                "steps (dataset.max_seq_len); only videos with annotations are cropped to max_seq_len "
                "(random_truncate), so remove this video from the training split or raise dataset.max_seq_len"
            )
    return _pad(samples, max_seq_len)


def collate_eval(samples: Sequence[VideoSample], max_seq_len: int, max_div_factor: int) -> Batch:
    """Pad evaluation samples to ``[B, C, padded_length(max T, max_seq_len, max_div_factor)]``."""
    _check_samples(samples)
    if max_div_factor < 1:
        raise ValueError(f"max_div_factor must be >= 1, got {max_div_factor}")
    longest = max(s.length for s in samples)
    return _pad(samples, padded_length(longest, max_seq_len, max_div_factor))


def _check_samples(samples: Sequence[VideoSample]) -> None:
    if len(samples) == 0:
        raise ValueError("cannot collate an empty list of samples")
    channels = {int(s.feats.shape[0]) for s in samples}
    if len(channels) != 1:
        raise ValueError(
            "samples have different channel counts: "
            + ", ".join(f"{s.video_id}: C={s.feats.shape[0]}" for s in samples)
        )


def _pad(samples: Sequence[VideoSample], padded_len: int) -> Batch:
    first = samples[0].feats
    feats = first.new_zeros((len(samples), first.shape[0], padded_len), dtype=torch.float32)  # [B, C, T_pad]
    for i, s in enumerate(samples):
        feats[i, :, : s.length] = s.feats
    lengths = torch.tensor([s.length for s in samples], dtype=torch.int64, device=first.device)
    mask = torch.arange(padded_len, device=first.device)[None, :] < lengths[:, None]  # [B, T_pad] bool
    metas = [
        VideoMeta(
            video_id=s.video_id,
            fps=s.fps,
            duration_sec=s.duration_sec,
            feat_stride=s.feat_stride,
            feat_num_frames=s.feat_num_frames,
            length=s.length,
            crop_window=s.crop_window,
        )
        for s in samples
    ]
    return Batch(
        feats=feats,
        mask=mask,
        segments_grid=[s.segments_grid for s in samples],
        labels=[s.labels for s in samples],
        metas=metas,
    )
