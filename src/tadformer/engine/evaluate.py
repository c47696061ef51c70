"""Evaluation: network -> raw outputs -> detections -> metrics (port of ``valid_one_epoch`` + ``eval.py``).

The network part (:func:`predict_raw`) and the post-processing part (:func:`detect_from_raw`) are
separate, so raw outputs can be saved once (``raw_outputs.pt``) and re-scored with other test
settings without the network (``tadformer eval --raw``).

Raw outputs keep, per video, the head outputs of the *valid* steps of every level (a padded step
never yields a candidate, since its probability is masked to 0), so they are small and exact.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from tadformer.config import ExperimentConfig, TestConfig
from tadformer.config_arch import arch_info
from tadformer.data.annotations import read_annotations
from tadformer.data.collate import collate_eval
from tadformer.data.dataset import FeatureDataset
from tadformer.data.rules import rules_for
from tadformer.data.types import VideoMeta, VideoSample
from tadformer.engine.checkpoint import atomic_torch_save
from tadformer.engine.runtime import Precision, make_precision
from tadformer.fusion import ExtScoreError, fuse_ext_scores, map_class_labels, read_ext_scores
from tadformer.metrics import EvalResult, evaluate_detections
from tadformer.model import ActionFormer
from tadformer.model.outputs import HeadOutputs
from tadformer.model.points import make_points
from tadformer.postprocess import Detections, postprocess_batch
from tadformer.results_io import atomic_write_text, read_json, results_to_dict

RAW_FORMAT = "tadformer-raw-outputs"


@dataclass
class RawVideoOutput:
    """Head outputs of one video at its valid steps.

    Attributes:
        meta: the video's :class:`VideoMeta` (fps, duration, stride, frames, length).
        cls_logits: per level ``[T_l, NC]`` float32, ``T_l = ceil(T / stride_l)``.
        offsets: per level ``[T_l, 2]`` float32 (level-stride units), or ``[T_l, NC, 2]`` for class-specific
            offsets (TriDet; decoded by the model over the padded length, so exact at the valid steps).
    """

    meta: VideoMeta
    cls_logits: list[torch.Tensor]
    offsets: list[torch.Tensor]


@dataclass
class RawOutputs:
    """Raw outputs of a whole split, plus what is needed to decode them."""

    videos: list[RawVideoOutput]
    strides: tuple[int, ...]
    regression_range: tuple[tuple[float, float], ...]
    class_names: tuple[str, ...]
    model_name: str = "LocPointTransformer"  # the architecture (its score-voting rule applies when re-scoring)

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` atomically (a torch file loadable with ``weights_only=True``)."""
        path = Path(path)
        payload = {
            "format": RAW_FORMAT, "strides": list(self.strides),
            "regression_range": [list(r) for r in self.regression_range], "class_names": list(self.class_names),
            "model_name": self.model_name,
            "videos": [{"meta": dataclasses.asdict(v.meta), "cls_logits": v.cls_logits, "offsets": v.offsets}
                       for v in self.videos],
        }
        return atomic_torch_save(payload, path, what="raw outputs")

    @staticmethod
    def load(path: str | Path) -> RawOutputs:
        """Read a file written by :meth:`save`."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"raw outputs file {path} not found (write one with `tadformer eval --out`)") from None
        except Exception as exc:
            raise ValueError(f"{path} is not a readable raw-outputs file ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != RAW_FORMAT:
            raise ValueError(f"{path} is not a tadformer raw-outputs file (written by `tadformer eval`)")
        try:
            videos = [RawVideoOutput(VideoMeta(**v["meta"]), list(v["cls_logits"]), list(v["offsets"]))
                      for v in payload["videos"]]
            return RawOutputs(videos, tuple(payload["strides"]),
                              tuple((float(a), float(b)) for a, b in payload["regression_range"]),
                              tuple(payload["class_names"]), str(payload.get("model_name", "LocPointTransformer")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: malformed raw-outputs file ({type(exc).__name__}: {exc}); "
                             "write it again with `tadformer eval --out`") from None


def build_eval_dataset(cfg: ExperimentConfig, split: Sequence[str] | None = None) -> tuple[FeatureDataset, Any]:
    """The evaluation dataset of ``split`` (default ``cfg.val_split``) and its annotation set."""
    splits = list(split) if split else list(cfg.val_split)
    if not cfg.dataset.json_file:
        raise ValueError("dataset.json_file is not set: point it at the annotation json (ActivityNet format)")
    rules = rules_for(cfg.dataset_name)
    ann = read_annotations(cfg.dataset.json_file, splits=splits, default_fps=cfg.dataset.default_fps,
                           remove_duplicates=rules.remove_duplicates)
    dataset = FeatureDataset(ann.videos, cfg.dataset, is_training=False, rules=rules)
    if len(dataset) == 0:
        raise ValueError(f"no video of split {splits} in {cfg.dataset.json_file} has a feature file in "
                         f"{cfg.dataset.feat_folder} (looked for "
                         f"<feat_folder>/<file_prefix><video_id>{cfg.dataset.file_ext})")
    return dataset, ann


@torch.no_grad()
def forward_video(model: ActionFormer, sample: VideoSample, max_seq_len: int, max_div_factor: int,
                  device: torch.device, precision: Precision | None = None) -> RawVideoOutput:
    """Run the network on one video (padded like the official eval) and keep its valid steps.

    ``precision`` (default float32) autocasts the network, e.g. ``make_precision("bf16", device)``;
    the kept outputs are float32 either way.
    """
    batch = collate_eval([sample], max_seq_len, max_div_factor).to(device, non_blocking=True)
    with (precision or Precision()).autocast():
        out = model(batch.feats, batch.mask)
    logits, offsets = [], []
    for lvl_logits, lvl_offsets, lvl_mask in zip(out.cls_logits, out.offsets, out.masks):
        n_valid = int(lvl_mask[0].sum())  # valid steps are a prefix: ceil(T / stride)
        logits.append(lvl_logits[0, :n_valid].float().cpu())
        offsets.append(lvl_offsets[0, :n_valid].float().cpu())
    return RawVideoOutput(batch.metas[0], logits, offsets)


def predict_raw(model: ActionFormer, dataset: FeatureDataset, cfg: ExperimentConfig, device: torch.device,
                class_names: Sequence[str], progress: bool = True, amp: str = "off") -> RawOutputs:
    """Raw outputs of every video of ``dataset`` (model put in eval mode).

    ``amp``: ``'off'`` (float32, official numerics) or an opt-in mixed-precision mode of
    :func:`~tadformer.engine.runtime.make_precision` (``'bf16'``: faster on CPUs with AVX-512 BF16/AMX).
    """
    model.eval()
    precision = make_precision(amp, device)
    videos = [
        forward_video(model, dataset[i], cfg.dataset.max_seq_len, cfg.model.max_div_factor, device, precision)
        for i in tqdm(range(len(dataset)), desc="eval", unit="video", disable=not progress, dynamic_ncols=True)
    ]
    ranges = tuple((float(a), float(b)) for a, b in cfg.model.regression_range)
    return RawOutputs(videos, tuple(cfg.model.fpn_strides), ranges,
                      tuple(class_names), cfg.model_name)


def detect_from_raw(raw: RawOutputs, test_cfg: TestConfig) -> list[Detections]:
    """Decode + NMS + seconds for every video of ``raw`` with the given test settings (and the score-voting
    rule of ``raw``'s architecture)."""
    voting = arch_info(raw.model_name).voting
    detections = []
    for video in raw.videos:
        lengths = [int(x.shape[0]) for x in video.cls_logits]
        points = make_points(lengths, raw.strides, raw.regression_range)
        outputs = HeadOutputs(
            cls_logits=[x[None] for x in video.cls_logits], offsets=[x[None] for x in video.offsets],
            masks=[torch.ones(1, n, dtype=torch.bool) for n in lengths], points=points,
        )
        detections.extend(postprocess_batch(outputs, [video.meta], test_cfg, voting_weights=voting))
    return detections


def fuse_detections(detections: Sequence[Detections], ext_score_file: str | Path,
                    label_dict: dict[str, int], num_classes: int | None = None) -> list[Detections]:
    """External classification-score fusion (ActivityNet ``test_cfg.ext_score_file``), official rule.

    Each video's detections (cut to its 200 best) are repeated under the two classes the external
    classifier scores highest, with score ``sqrt(ext_score * det_score)`` in float64
    (:func:`tadformer.fusion.fuse_ext_scores`). The classes are mapped **by name** to the annotation's
    ``label_id`` (``label_dict``); videos come in sorted id order, as official.

    Raises:
        ExtScoreError: a missing or malformed file, a video without scores (named), a class name the
            annotation file does not know, or (``num_classes == 1``: class-agnostic detection) a class
            count that differs from the annotation file's.
    """
    ext = read_ext_scores(ext_score_file)
    if num_classes == 1 and len(ext.class_names) != len(label_dict):
        raise ExtScoreError(f"{ext_score_file}: {len(ext.class_names)} classes, but the annotation file has "
                            f"{len(label_dict)}; the score file must score the annotation's classes")
    ids = [d.video_id for d in detections for _ in range(len(d))]
    segs = np.concatenate([d.segments_sec.detach().cpu().numpy().reshape(-1, 2) for d in detections]) \
        if detections else np.zeros((0, 2), np.float32)
    scores = np.concatenate([d.scores.detach().cpu().numpy().reshape(-1) for d in detections]) \
        if detections else np.zeros(0, np.float32)
    fused = fuse_ext_scores(ids, segs[:, 0], segs[:, 1], scores, ext)
    labels = map_class_labels(fused.labels, ext.class_names, label_dict)
    out: list[Detections] = []
    start = 0
    for end in [*np.flatnonzero(np.asarray(fused.video_ids[1:]) != np.asarray(fused.video_ids[:-1])) + 1,
                len(fused)]:
        if end > start:
            out.append(Detections(fused.video_ids[start],
                                  torch.from_numpy(np.stack([fused.t_start[start:end], fused.t_end[start:end]], 1)),
                                  torch.from_numpy(fused.scores[start:end]), torch.from_numpy(labels[start:end])))
        start = end
    return out


def fuse_for_annotations(detections: Sequence[Detections], ext_score_file: str | Path, annotation_json: str | Path,
                         num_classes: int | None = None) -> tuple[list[Detections], tuple[str, ...]]:
    """:func:`fuse_detections` with the label map (names -> label_id) of ``annotation_json``; also returns
    that file's class names, which the fused labels index."""
    ann = read_annotations(annotation_json)
    return fuse_detections(detections, ext_score_file, ann.label_dict, num_classes), ann.class_names


def score_raw(raw: RawOutputs, cfg: ExperimentConfig, annotation_json: str | Path, split: str,
              tiou_thresholds: Sequence[float] | None = None,
              ext_score_file: str | Path | None = None) -> tuple[EvalResult, list[Detections], tuple[str, ...]]:
    """Raw outputs -> detections (``cfg.test_cfg``) -> score fusion (``ext_score_file``, default the
    config's) -> mAP at ``tiou_thresholds`` (default: the dataset's official thresholds).

    Returns:
        The result, the (fused) detections and the class names their labels index (the annotation
        file's after fusion, else the model's).
    """
    detections = detect_from_raw(raw, cfg.test_cfg)
    names = raw.class_names
    ext = ext_score_file or cfg.test_cfg.ext_score_file
    if ext:
        detections, names = fuse_for_annotations(detections, ext, annotation_json, cfg.dataset.num_classes)
    thresholds = tiou_thresholds if tiou_thresholds is not None else rules_for(cfg.dataset_name).tiou_thresholds
    return score_detections(detections, annotation_json, split, thresholds), detections, names


def read_ground_truth(annotation_json: str | Path, split: str) -> dict[str, Any]:
    """The parsed ground-truth json, after checking it has a ``database`` with videos of ``split``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, no ``database`` mapping, or no video of ``split`` (the message lists the
            subsets that exist).
    """
    path = Path(annotation_json)
    gt = read_json(path, "annotation file")
    database = gt.get("database") if isinstance(gt, dict) else None
    if not isinstance(database, dict):
        raise ValueError(f"{path}: expected a top-level object with a 'database' mapping video ids to entries")
    subsets = sorted({str(e.get("subset", "")).lower() for e in database.values() if isinstance(e, dict)})
    if split.lower() not in subsets:
        raise ValueError(f"{path}: no video of split {split!r}; subsets in the file: {subsets} (use --split)")
    return gt


def score_detections(detections: Sequence[Detections], annotation_json: str | Path, split: str,
                     tiou_thresholds: Sequence[float] | None = None) -> EvalResult:
    """Official ActivityNet-style mAP of ``detections`` against the ``split`` of ``annotation_json``."""
    gt = read_ground_truth(annotation_json, split)
    preds = results_to_dict(detections, None)
    thr = np.linspace(0.3, 0.7, 5) if tiou_thresholds is None else np.asarray(tiou_thresholds, dtype=np.float64)
    return evaluate_detections(gt, preds, split=split, tiou_thresholds=thr)


def write_eval_outputs(out_dir: Path, result: EvalResult, detections: Sequence[Detections],
                       class_names: Sequence[str], extra: dict[str, Any] | None = None, *,
                       split: str | None = None, annotation_json: str | Path | None = None) -> None:
    """Write ``metrics.json`` and ``predictions.json`` (ActivityNet result format) atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = result.to_dict(list(class_names))
    if split is not None:
        metrics["split"] = split
    if annotation_json is not None:
        metrics["annotations"] = str(Path(annotation_json).resolve())
    if extra:
        metrics.update(extra)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(out_dir / "predictions.json", json.dumps(results_to_dict(detections, list(class_names))))
