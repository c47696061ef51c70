"""From raw head outputs to detections in seconds: decoding, NMS, grid -> seconds.

Mirrors the official ``PtTransformer.inference_single_video`` + ``postprocessing`` (SPEC §6):

1. :func:`decode_detections` (one video, on the outputs' device): per level, ``sigmoid(logit) * mask``
   flattened row-major over ``(T_l, C)``, keep ``> pre_nms_thresh``, top ``pre_nms_topk`` per level by
   descending score, segments ``(t - o_l * s, t + o_r * s)`` in grid units, keep length
   ``> duration_thresh``, levels concatenated in order.
2. :func:`~tadformer.nms.batched_nms` on CPU (skipped for ``nms_method == "none"``).
3. :func:`~tadformer.segments.grid_to_sec` with the official clamping to ``[0, duration]``.

The test settings are the official ``test_cfg`` names; pass a :class:`~tadformer.config.TestConfig`
(or anything with those attributes) and/or keyword overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import torch
from torch import Tensor

from tadformer.model.outputs import HeadOutputs
from tadformer.model.points import Points
from tadformer.nms import batched_nms
from tadformer.segments import grid_to_sec

__all__ = ["Detections", "PostprocessParams", "decode_detections", "nms_detections", "detections_to_seconds",
           "postprocess_video", "postprocess_batch", "resolve_params"]


@dataclass(frozen=True)
class PostprocessParams:
    """The ``test_cfg`` values used after the forward pass (official names, THUMOS14 values)."""

    pre_nms_thresh: float = 0.001
    pre_nms_topk: int = 2000  # per pyramid level
    iou_threshold: float = 0.1  # hard NMS only; Gaussian soft-NMS ignores it
    min_score: float = 0.001
    max_seg_num: int = 200
    nms_method: str = "soft"  # 'soft' | 'hard' | 'none'
    nms_sigma: float = 0.5
    duration_thresh: float = 0.05  # grid units
    multiclass_nms: bool = True
    voting_thresh: float = 0.7  # class-agnostic NMS only
    voting_weights: str = "score_iou"  # 'score' for TriDet (tadformer setting: the architecture's voting rule)


class VideoMetaLike(Protocol):
    """What post-processing needs to know about a video (e.g. ``tadformer.data.types.VideoMeta``)."""

    @property
    def video_id(self) -> str: ...
    @property
    def fps(self) -> float: ...
    @property
    def duration_sec(self) -> float: ...
    @property
    def feat_stride(self) -> float: ...
    @property
    def feat_num_frames(self) -> float: ...


@dataclass
class Detections:
    """Final detections of one video, by descending score.

    Attributes:
        video_id: video key.
        segments_sec: ``[K, 2]`` float32 (start, end) in seconds, clamped to ``[0, duration]``.
        scores: ``[K]`` float32 confidence.
        labels: ``[K]`` int64 class ids.
    """

    video_id: str
    segments_sec: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def resolve_params(test_cfg: Any = None, **overrides: Any) -> PostprocessParams:
    """Build :class:`PostprocessParams` from an object with official ``test_cfg`` attribute names
    (e.g. ``TestConfig``; other attributes are ignored) and/or keyword overrides.

    Raises:
        ValueError: on an unknown keyword or an invalid ``nms_method``.
    """
    names = {f.name for f in fields(PostprocessParams)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"postprocess: unknown test setting(s) {unknown}; expected some of {sorted(names)}")
    values = {n: getattr(test_cfg, n) for n in names if test_cfg is not None and hasattr(test_cfg, n)}
    values.update(overrides)
    params = PostprocessParams(**values)
    if params.nms_method not in ("soft", "hard", "none"):
        raise ValueError(f"postprocess: nms_method must be 'soft', 'hard' or 'none', got {params.nms_method!r}")
    if params.voting_weights not in ("score_iou", "score"):
        raise ValueError(f"postprocess: voting_weights must be 'score_iou' or 'score', got {params.voting_weights!r}")
    return params


def decode_detections(
    cls_logits: Sequence[Tensor],
    offsets: Sequence[Tensor],
    masks: Sequence[Tensor],
    points: Points,
    pre_nms_thresh: float = 0.001,
    pre_nms_topk: int = 2000,
    duration_thresh: float = 0.05,
) -> tuple[Tensor, Tensor, Tensor]:
    """Turn one video's per-level head outputs into candidate segments (official decoding).

    Args:
        cls_logits: per level ``[T_l, NC]`` logits.
        offsets: per level ``[T_l, 2]`` (left, right) distances in units of the level stride, or
            ``[T_l, NC, 2]`` class-specific ones (TriDet): candidate (t, c) then uses ``offsets[t, c]``.
        masks: per level ``[T_l]`` bool, True at valid steps.
        points: the pyramid points (``sum_l T_l`` rows, level order).
        pre_nms_thresh: keep probabilities strictly above this.
        pre_nms_topk: keep at most this many per level (highest first).
        duration_thresh: keep segments strictly longer than this (grid units).

    Returns:
        ``segs_grid`` ``[K, 2]`` float32, ``scores`` ``[K]`` float32, ``labels`` ``[K]`` int64, level by
        level and by descending score within a level, on the logits' device.
    """
    if not (len(cls_logits) == len(offsets) == len(masks) == len(points.level_lengths)):
        raise ValueError(f"decode_detections: got {len(cls_logits)} logit, {len(offsets)} offset and "
                         f"{len(masks)} mask levels for {len(points.level_lengths)} point levels")
    segs_all, scores_all, labels_all = [], [], []
    for lvl, (logit, off, mask, t_grid, stride) in enumerate(
            zip(cls_logits, offsets, masks, points.split(points.t_grid), points.split(points.stride))):
        if logit.ndim != 2 or off.shape not in ((logit.shape[0], 2), (*logit.shape, 2)) \
                or mask.shape != (logit.shape[0],) or t_grid.shape[0] != logit.shape[0]:
            raise ValueError(f"decode_detections: level {lvl} expects logits [T, C], offsets [T, 2] or [T, C, 2], "
                             f"mask [T] and {t_grid.shape[0]} points; got {tuple(logit.shape)}, {tuple(off.shape)}, "
                             f"{tuple(mask.shape)}")
        num_classes = logit.shape[1]
        prob = (logit.sigmoid() * mask.unsqueeze(-1)).flatten()  # index = t * NC + c
        keep = prob > pre_nms_thresh
        flat_idx = torch.nonzero(keep).squeeze(1)
        prob, order = torch.sort(prob[keep], descending=True)
        k = min(pre_nms_topk, flat_idx.shape[0])
        prob, flat_idx = prob[:k], flat_idx[order[:k]]
        pt = torch.div(flat_idx, num_classes, rounding_mode="floor")
        cls = torch.fmod(flat_idx, num_classes)
        t, s = t_grid[pt], stride[pt]
        chosen = off[pt, cls] if off.dim() == 3 else off[pt]  # class-specific offsets (TriDet): the candidate's class
        segs = torch.stack((t - chosen[:, 0] * s, t + chosen[:, 1] * s), dim=-1)
        long_enough = (segs[:, 1] - segs[:, 0]) > duration_thresh
        segs_all.append(segs[long_enough])
        scores_all.append(prob[long_enough])
        labels_all.append(cls[long_enough])
    return torch.cat(segs_all), torch.cat(scores_all), torch.cat(labels_all)


def nms_detections(
    segs_grid: Tensor, scores: Tensor, labels: Tensor, params: PostprocessParams
) -> tuple[Tensor, Tensor, Tensor]:
    """Apply the configured NMS (on CPU, like the official code); ``'none'`` returns the inputs on CPU."""
    segs_grid, scores, labels = segs_grid.detach().cpu(), scores.detach().cpu(), labels.detach().cpu()
    if params.nms_method == "none":
        return segs_grid, scores, labels
    return batched_nms(segs_grid, scores, labels, params.iou_threshold, params.min_score, params.max_seg_num,
                       use_soft_nms=params.nms_method == "soft", multiclass=params.multiclass_nms,
                       sigma=params.nms_sigma, voting_thresh=params.voting_thresh,
                       voting_weights=params.voting_weights)  # type: ignore[arg-type]


def detections_to_seconds(segs_grid: Tensor, scores: Tensor, labels: Tensor, meta: VideoMetaLike) -> Detections:
    """Wrap grid-unit detections as :class:`Detections` in seconds, clamped to ``[0, duration]``."""
    segs_sec = grid_to_sec(segs_grid, meta.fps, meta.feat_stride, meta.feat_num_frames, meta.duration_sec)
    return Detections(meta.video_id, segs_sec, scores, labels.to(torch.int64))


def postprocess_video(
    cls_logits: Sequence[Tensor], offsets: Sequence[Tensor], masks: Sequence[Tensor], points: Points,
    meta: VideoMetaLike, test_cfg: Any = None, **overrides: Any,
) -> Detections:
    """Decode, NMS and convert one video (per-level ``[T_l, NC]``, ``[T_l, 2]``, ``[T_l]`` inputs).

    Settings come from ``test_cfg`` (official attribute names) and/or keyword overrides; unset ones
    take the THUMOS14 values of :class:`PostprocessParams`. Results are on CPU.
    """
    params = resolve_params(test_cfg, **overrides)
    segs, scores, labels = decode_detections(cls_logits, offsets, masks, points, params.pre_nms_thresh,
                                             params.pre_nms_topk, params.duration_thresh)
    segs, scores, labels = nms_detections(segs, scores, labels, params)
    return detections_to_seconds(segs, scores, labels, meta)


def postprocess_batch(
    outputs: HeadOutputs, metas: Sequence[VideoMetaLike], test_cfg: Any = None, **overrides: Any
) -> list[Detections]:
    """:func:`postprocess_video` for every video of a batch of head outputs (``B == len(metas)``)."""
    batch = outputs.cls_logits[0].shape[0]
    if batch != len(metas):
        raise ValueError(f"postprocess_batch: outputs hold {batch} videos but {len(metas)} metas were given")
    params = resolve_params(test_cfg, **overrides)
    with torch.no_grad():
        return [
            postprocess_video([x[b] for x in outputs.cls_logits], [x[b] for x in outputs.offsets],
                              [x[b] for x in outputs.masks], outputs.points, meta, params)
            for b, meta in enumerate(metas)
        ]
