"""Training-time augmentation: random temporal truncation (official ``truncate_feats``).

Pure: the input sample is never modified, and all randomness comes from an explicit
``torch.Generator`` (or torch's global RNG when None, which DataLoader seeds per worker).
The official code draws from Python's ``random`` module; the *distribution* here is the same
(integers uniform over the same inclusive ranges) but the random stream is not, so the exact
crops of an official run cannot be reproduced. Everything else follows SPEC §2.4.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from tadformer.data.types import VideoSample


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in ``[low, high]`` (both inclusive, like ``random.randint``)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def crop_length_range(num_steps: int, crop_ratio: Sequence[float]) -> tuple[int, int]:
    """Inclusive crop-length range for ``T = num_steps``: ``[max(round(lo*T), 1), min(round(hi*T), T)]``.

    ``round`` is Python's round-half-to-even, as in the official code (e.g. 0.9 * 5 = 4.5 -> 4).
    """
    lo, hi = crop_ratio
    return max(round(lo * num_steps), 1), min(round(hi * num_steps), num_steps)


def window_segments(
    segments_grid: torch.Tensor, start: int, end: int, offset_grid: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clip segments to the window ``[start - offset, end + offset]``.

    Returns:
        ``left [N]``, ``right [N]`` (clipped ends, grid units) and ``ratio [N]``, the kept fraction
        ``clamp(right - left, 0) / |end - start|`` of each segment.
    """
    window = torch.tensor([start, end], dtype=torch.float32)
    left = torch.maximum(window[0] - offset_grid, segments_grid[:, 0])
    right = torch.minimum(window[1] + offset_grid, segments_grid[:, 1])
    inter = (right - left).clamp(min=0)
    ratio = inter / torch.abs(segments_grid[:, 1] - segments_grid[:, 0])
    return left, right, ratio


def random_truncate(
    sample: VideoSample,
    max_seq_len: int,
    trunc_thresh: float,
    offset_grid: float,
    crop_ratio: Sequence[float] | None,
    generator: torch.Generator | None,
    max_num_trials: int = 200,
    has_action: bool = True,
    window: tuple[int, int] | None = None,
    randint: Callable[[int, int], int] | None = None,
) -> VideoSample:
    """Randomly crop a training sample to at most ``max_seq_len`` steps (official ``truncate_feats``).

    * ``T <= max_seq_len``: with ``crop_ratio`` None the sample is returned unchanged; otherwise a
      crop length ``L`` is drawn from :func:`crop_length_range` and ``L == T`` returns it unchanged.
    * ``T > max_seq_len``: ``L = max_seq_len`` (``crop_ratio`` is not applied).

    Then up to ``max_num_trials`` windows ``[st, st + L)`` are drawn with ``st`` uniform in
    ``[0, T - L]``; segments are clipped to ``[st - offset, st + L + offset]`` and kept when they
    keep at least ``trunc_thresh`` of their length. The first window keeping a segment wins (the
    first window at all when ``has_action`` is False); if none does, the last window is used, maybe
    with no segment left.

    Args:
        sample: the item, ``feats [C, T]``, ``segments_grid [N, 2]``.
        max_seq_len: maximum output length (grid steps).
        trunc_thresh: minimum kept fraction of a segment's length.
        offset_grid: how far (grid units) a kept segment may reach outside the window.
        crop_ratio: ``(lo, hi)`` crop fraction for short videos, or None.
        generator: source of randomness; None uses torch's global RNG.
        max_num_trials: number of windows tried.
        has_action: require at least one kept segment.
        window: replay a recorded crop: ``(start, end)`` is used as the window and nothing is drawn
            (``(0, T)`` returns the input, as an uncropped draw does).
        randint: replaces the draws (``randint(a, b)``, both ends inclusive, like ``random.randint``):
            e.g. the recorded draws of an official run. Default: ``generator``.

    Returns:
        The input itself when nothing is cropped; else a new sample with ``feats [C, L]`` (a copy),
        segments shifted by ``-st`` (they lie in ``[-offset, L + offset]``) and
        ``crop_window = (st, st + L)``. The input is never modified.
    """
    if max_num_trials < 1:
        raise ValueError(f"max_num_trials must be >= 1, got {max_num_trials}")
    num_steps = sample.length
    draw = randint if randint is not None else (lambda lo, hi: _randint(lo, hi, generator))
    if window is not None:
        start, end = _checked_window(window, num_steps, max_seq_len, sample.video_id)
        if (start, end) == (0, num_steps):
            return sample
        crop_len = end - start
        left, right, ratio = window_segments(sample.segments_grid, start, end, offset_grid)
        keep = ratio >= trunc_thresh
        return _cropped(sample, start, crop_len, left, right, keep)
    if num_steps <= max_seq_len:
        if crop_ratio is None:
            return sample
        lo, hi = crop_length_range(num_steps, crop_ratio)
        crop_len = draw(lo, hi)
        if crop_len == num_steps:
            return sample
    else:
        crop_len = max_seq_len

    for _ in range(max_num_trials):
        start = draw(0, num_steps - crop_len)
        left, right, ratio = window_segments(sample.segments_grid, start, start + crop_len, offset_grid)
        keep = ratio >= trunc_thresh
        if not has_action or bool(keep.any()):
            break
    return _cropped(sample, start, crop_len, left, right, keep)


def _cropped(sample: VideoSample, start: int, crop_len: int, left: torch.Tensor, right: torch.Tensor,
             keep: torch.Tensor) -> VideoSample:
    segments = torch.stack((left[keep], right[keep]), dim=1) - start
    return dataclasses.replace(
        sample,
        feats=sample.feats[:, start : start + crop_len].clone(),
        segments_grid=segments,
        labels=sample.labels[keep].clone(),
        crop_window=(start, start + crop_len),
    )


def _checked_window(window: Sequence[int], num_steps: int, max_seq_len: int, video_id: str) -> tuple[int, int]:
    start, end = (int(v) for v in window)
    if not 0 <= start < end <= num_steps or end - start > max_seq_len:
        raise ValueError(f"video {video_id!r}: crop window {list(window)} does not fit a video of T={num_steps} "
                         f"steps (need 0 <= start < end <= T and end - start <= max_seq_len={max_seq_len})")
    return start, end
