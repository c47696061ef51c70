"""Single-video inference: features ``.npy`` -> top-k detections in seconds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from tadformer.data.dataset import prepare_features
from tadformer.data.sources import concat_streams, expected_dims, read_feature_file
from tadformer.data.types import VideoSample
from tadformer.engine.evaluate import RawOutputs, detect_from_raw, forward_video
from tadformer.engine.loading import LoadedModel
from tadformer.engine.runtime import make_precision
from tadformer.postprocess import Detections

DEFAULT_FPS = 30.0


def video_meta_from_annotations(annotation_json: str | Path, video_id: str) -> tuple[float | None, float | None]:
    """(fps, duration_sec) of ``video_id`` in an annotation json, or (None, None) if absent."""
    db = json.loads(Path(annotation_json).read_text(encoding="utf-8")).get("database", {})
    entry = db.get(video_id)
    if entry is None:
        return None, None
    return entry.get("fps"), entry.get("duration")


def infer_video(loaded: LoadedModel, feat_path: str | Path | Sequence[str | Path], *, fps: float | None = None,
                duration_sec: float | None = None, video_id: str | None = None,
                device: torch.device | None = None, amp: str = "off") -> Detections:
    """Detect actions in one video's features (``(T, C)`` ``.npy``).

    Args:
        loaded: the model (:func:`~tadformer.engine.loading.load_for_inference`).
        feat_path: the features file (``.npy`` or ``.npz``), or one file per feature stream (Ego4D feature
            combinations: concatenated along channels in the given order, like ``dataset.feat_folder``).
        fps: the video's frame rate (default 30, or ``dataset.default_fps`` when set).
        duration_sec: the video's duration; default: the end of the last feature's clip.
        video_id: name in the outputs (default: the file name without extension).
        device: where to run (default: the model's device).
        amp: ``'off'`` (float32, official numerics) or opt-in ``'bf16'`` autocast (see
            :func:`~tadformer.engine.runtime.make_precision`).

    Returns:
        All detections after NMS (at most ``test_cfg.max_seg_num``), sorted by score.
    """
    cfg = loaded.cfg
    paths = [Path(feat_path)] if isinstance(feat_path, (str, Path)) else [Path(f) for f in feat_path]
    feat_path = paths[0]
    vid = video_id or paths[0].stem
    in_dim = cfg.dataset.input_dim
    total_dim = in_dim if isinstance(in_dim, int) else sum(in_dim)  # the channels of every stream
    dims = [total_dim] if len(paths) == 1 else expected_dims(in_dim, len(paths))
    parts = [read_feature_file(f, d, vid) for f, d in zip(paths, dims)]
    feats_tc = concat_streams(parts, paths, vid, total_dim, kind="files")  # [T, sum C_i]
    feats, grid = prepare_features(feats_tc, cfg.dataset, f"video {vid!r}: feature file {feat_path}")
    fps_used = float(fps or cfg.dataset.default_fps or DEFAULT_FPS)
    if duration_sec is None:  # the last clip ends at frame stride*(T-1) + num_frames of the stored features
        stored_stride = cfg.dataset.feat_stride * cfg.dataset.downsample_rate
        steps = feats_tc.shape[0] if cfg.dataset.force_upsampling else feats.shape[1]
        stride = cfg.dataset.feat_stride if cfg.dataset.force_upsampling else stored_stride
        duration_sec = (stride * (steps - 1) + cfg.dataset.num_frames) / fps_used
    sample = VideoSample(
        video_id=vid, feats=feats, segments_grid=torch.zeros(0, 2), labels=torch.zeros(0, dtype=torch.int64),
        fps=fps_used, duration_sec=float(duration_sec), feat_stride=grid.stride, feat_num_frames=grid.num_frames,
    )
    dev = device or next(loaded.model.parameters()).device
    precision = make_precision(amp, dev)
    raw_video = forward_video(loaded.model, sample, cfg.dataset.max_seq_len, cfg.model.max_div_factor, dev,
                              precision)
    ranges = tuple((float(a), float(b)) for a, b in cfg.model.regression_range)
    raw = RawOutputs([raw_video], tuple(cfg.model.fpn_strides), ranges, loaded.class_names, cfg.model_name)
    return detect_from_raw(raw, cfg.test_cfg)[0]


def top_k(det: Detections, k: int, min_score: float = 0.0) -> Detections:
    """The ``k`` best detections scoring at least ``min_score`` (input is sorted by score)."""
    order = torch.argsort(det.scores, descending=True, stable=True)
    keep = order[det.scores[order] >= min_score][: max(k, 0)]
    return replace(det, segments_sec=det.segments_sec[keep], scores=det.scores[keep], labels=det.labels[keep])


def format_table(det: Detections, class_names: tuple[str, ...]) -> str:
    """A plain-text table: rank, start, end (seconds), label, score."""
    lines = [f"{'#':>3}  {'start_s':>9}  {'end_s':>9}  {'label':<22} {'score':>7}"]
    for i in range(len(det.scores)):
        s, e = (float(x) for x in det.segments_sec[i])
        lab = int(det.labels[i])
        name = class_names[lab] if 0 <= lab < len(class_names) else str(lab)
        lines.append(f"{i + 1:>3}  {s:>9.2f}  {e:>9.2f}  {name:<22} {float(det.scores[i]):>7.4f}")
    if len(det.scores) == 0:
        lines.append("  (no detection)")
    return "\n".join(lines)
