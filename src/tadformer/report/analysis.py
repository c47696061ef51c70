"""Error analysis of a detection run: per-prediction matches, PR curves, DETAD-style error types.

Everything is computed from the ground truth and a result file, reusing :mod:`tadformer.metrics`
(GT loading and de-duplication, score visiting order, tIoU, interpolated AP), so the TP/FP flags
here are the ones the official evaluator uses.

False-positive analysis (after DETAD, Alwassel et al., ECCV 2018): per class, the top ``k * G``
predictions by score are analysed (``G`` = GT count of the class, ``k = 10`` by default; ``None``
analyses all). A prediction that is not a TP at ``tiou_threshold`` (0.5) is, checked in this order:

- ``double_detection``: tIoU >= 0.5 with a GT of the same class (which was already matched),
- ``wrong_label``: tIoU >= 0.5 with a GT of another class,
- ``localization``: 0.1 <= tIoU < 0.5 with a GT of the same class,
- ``confusion``: 0.1 <= tIoU < 0.5 with a GT of another class,
- ``background``: tIoU < 0.1 with every GT of the video (or a video without GT).

Missed GT (false negatives at the threshold, over all predictions) are bucketed by length with
DETAD's bins in seconds: XS (0, 3], S (3, 6], M (6, 12], L (12, 18], XL (18, inf).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tadformer.metrics import (
    DEFAULT_TIOU_THRESHOLDS,
    GroundTruth,
    block_tiou,
    interpolated_ap,
    load_ground_truth,
    match_block,
    score_visit_order,
)
from tadformer.results_io import FlatDetections, flatten_results

ERROR_TYPES: tuple[str, ...] = ("double_detection", "wrong_label", "localization", "confusion", "background")
TRUE_POSITIVE = "true_positive"
MIN_TIOU = 0.1  # below this a prediction overlaps nothing (DETAD)
LENGTH_BINS_SEC: tuple[tuple[str, float, float], ...] = (
    ("XS", 0.0, 3.0), ("S", 3.0, 6.0), ("M", 6.0, 12.0), ("L", 12.0, 18.0), ("XL", 18.0, float("inf")),
)


@dataclass(frozen=True)
class Matching:
    """Official greedy matching of every prediction, at several tIoU thresholds.

    Attributes:
        gt: the de-duplicated ground truth (M GT segments).
        pred: the flattened predictions (N rows, input order).
        tiou_thresholds: [T] thresholds.
        class_ids: [K] sorted GT label ids (predictions of other labels are ignored by the metric).
        pred_gt_video: [N] GT video index of each prediction, -1 if its video has no GT entry.
        is_tp: [T, N] bool; False for ignored predictions.
        matched_gt: [T, N] int64 GT row matched by each TP, -1 otherwise.
    """

    gt: GroundTruth
    pred: FlatDetections
    tiou_thresholds: np.ndarray
    class_ids: np.ndarray
    pred_gt_video: np.ndarray
    is_tp: np.ndarray
    matched_gt: np.ndarray

    @property
    def counted(self) -> np.ndarray:
        """[N] bool: the prediction's label has GT, so the metric counts it (TP or FP)."""
        return np.isin(self.pred.labels, self.class_ids)

    def threshold_index(self, tiou: float) -> int:
        """Index of ``tiou`` in ``tiou_thresholds`` (within 1e-6)."""
        hits = np.flatnonzero(np.abs(self.tiou_thresholds - tiou) < 1e-6)
        if not len(hits):
            raise ValueError(f"tIoU {tiou} is not one of the matched thresholds {self.tiou_thresholds.tolist()}")
        return int(hits[0])


def match_predictions(
    ground_truth: Mapping[str, Any] | GroundTruth,
    predictions: Mapping[str, Any] | FlatDetections,
    split: str = "test",
    tiou_thresholds: Sequence[float] | np.ndarray = DEFAULT_TIOU_THRESHOLDS,
) -> Matching:
    """Match every prediction to the GT like :func:`tadformer.metrics.evaluate_detections` does.

    Args:
        ground_truth: annotation json dict (with ``database``) or a :class:`GroundTruth`.
        predictions: ActivityNet result dict or :class:`FlatDetections`.
        split: GT subset.
        tiou_thresholds: [T] thresholds.

    Returns:
        The :class:`Matching` (TP flags and matched GT rows per threshold).
    """
    gt = ground_truth if isinstance(ground_truth, GroundTruth) else load_ground_truth(ground_truth, split)
    pred = flatten_results(predictions)
    thr = np.asarray(tiou_thresholds, dtype=np.float64).reshape(-1)
    lookup = {name: i for i, name in enumerate(gt.video_names)}
    vmap = np.asarray([lookup.get(v, -1) for v in pred.video_names], dtype=np.int64)
    p_vid = vmap[pred.video_index] if len(pred) else np.zeros(0, dtype=np.int64)
    class_ids = np.unique(gt.labels)
    matched = np.full((len(thr), len(pred)), -1, dtype=np.int64)
    for c in class_ids.tolist():
        p_rows = np.flatnonzero(pred.labels == c)
        visit = p_rows[score_visit_order(pred.scores[p_rows])]
        for v in np.unique(p_vid[visit]).tolist():
            g_rows = np.flatnonzero((gt.labels == c) & (gt.video_index == v)) if v >= 0 else np.zeros(0, int)
            if not len(g_rows):
                continue
            rows = visit[p_vid[visit] == v]  # still in visiting order
            iou = block_tiou(pred.t_start_sec[rows], pred.t_end_sec[rows], gt.t_start_sec[g_rows],
                             gt.t_end_sec[g_rows])
            cols = match_block(iou, thr)
            matched[:, rows] = np.where(cols >= 0, g_rows[np.maximum(cols, 0)], -1)
    return Matching(gt, pred, thr, class_ids, p_vid, matched >= 0, matched)


def class_pr_curve(matching: Matching, class_id: int, tiou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall [P] of one class along the evaluator's visiting order (P = its predictions)."""
    t = matching.threshold_index(tiou)
    rows = np.flatnonzero(matching.pred.labels == class_id)
    rows = rows[score_visit_order(matching.pred.scores[rows])]
    tp = matching.is_tp[t, rows]
    tp_cum = np.cumsum(tp, dtype=np.float64)
    n_gt = float(np.sum(matching.gt.labels == class_id))
    recall = tp_cum / n_gt if n_gt else np.zeros_like(tp_cum)
    precision = tp_cum / np.arange(1, len(rows) + 1, dtype=np.float64)
    return precision, recall


def mean_pr_curve(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], num_points: int = 101
) -> tuple[np.ndarray, np.ndarray]:
    """Class-mean of interpolated precision (``max`` precision at recall >= r) on a recall grid.

    Returns:
        (precision [num_points], recall grid [num_points] from 0 to 1).
    """
    grid = np.linspace(0.0, 1.0, num_points)
    stack = np.zeros((max(len(curves), 1), num_points))
    for i, (prec, rec) in enumerate(curves):
        if not len(prec):
            continue
        envelope = np.maximum.accumulate(prec[::-1])[::-1]  # best precision from this point on
        idx = np.searchsorted(rec, grid, side="left")
        ok = idx < len(rec)
        stack[i, ok] = envelope[idx[ok]]
    return stack.mean(axis=0), grid


@dataclass(frozen=True)
class FalsePositiveAnalysis:
    """DETAD-style categories of the analysed top predictions.

    Attributes:
        tiou_threshold: the TP threshold (0.5).
        top_factor: k of the top ``k * G`` predictions per class, or None for all.
        rows: [A] analysed prediction rows (into the flattened predictions).
        categories: [A] ``"true_positive"`` or one of :data:`ERROR_TYPES`.
    """

    tiou_threshold: float
    top_factor: int | None
    rows: np.ndarray
    categories: np.ndarray

    def counts(self) -> dict[str, int]:
        """Count per category, ``true_positive`` first then :data:`ERROR_TYPES` (zeros included)."""
        return {k: int(np.sum(self.categories == k)) for k in (TRUE_POSITIVE, *ERROR_TYPES)}


def _categorise(tp: bool, same: float, other: float, thr: float) -> str:
    if tp:
        return TRUE_POSITIVE
    if same >= thr:
        return "double_detection"
    if other >= thr:
        return "wrong_label"
    if same >= MIN_TIOU:
        return "localization"
    if other >= MIN_TIOU:
        return "confusion"
    return "background"


def false_positive_analysis(
    matching: Matching, tiou: float = 0.5, top_factor: int | None = 10
) -> FalsePositiveAnalysis:
    """Categorise the top ``top_factor * G`` predictions of each class (see the module docstring)."""
    t = matching.threshold_index(tiou)
    gt, pred = matching.gt, matching.pred
    selected: list[np.ndarray] = []
    for c in matching.class_ids.tolist():
        rows = np.flatnonzero(pred.labels == c)
        rows = rows[score_visit_order(pred.scores[rows])]
        if top_factor is not None:
            rows = rows[: top_factor * int(np.sum(gt.labels == c))]
        selected.append(rows)
    rows = np.concatenate(selected) if selected else np.zeros(0, dtype=np.int64)
    best_same = np.zeros(len(rows))
    best_other = np.zeros(len(rows))
    vids = matching.pred_gt_video[rows]
    for v in np.unique(vids[vids >= 0]).tolist():
        sel = np.flatnonzero(vids == v)
        g = np.flatnonzero(gt.video_index == v)
        if not len(g):
            continue
        r = rows[sel]
        iou = block_tiou(pred.t_start_sec[r], pred.t_end_sec[r], gt.t_start_sec[g], gt.t_end_sec[g])
        same = pred.labels[r][:, None] == gt.labels[g][None, :]
        best_same[sel] = np.where(same, iou, 0.0).max(axis=1)
        best_other[sel] = np.where(same, 0.0, iou).max(axis=1)
    thr = float(matching.tiou_thresholds[t])
    cats = [
        _categorise(bool(tp), s, o, thr)
        for tp, s, o in zip(matching.is_tp[t, rows].tolist(), best_same.tolist(), best_other.tolist())
    ]
    return FalsePositiveAnalysis(thr, top_factor, rows, np.asarray(cats, dtype=object))


@dataclass(frozen=True)
class MissedByLength:
    """GT counts and missed GT (not matched at the threshold) per DETAD length bin.

    Attributes:
        bins: bin names (XS, S, M, L, XL).
        edges_sec: (low, high] bounds of each bin, seconds.
        num_gt: [B] GT per bin.
        num_missed: [B] unmatched GT per bin.
    """

    bins: tuple[str, ...]
    edges_sec: tuple[tuple[float, float], ...]
    num_gt: np.ndarray
    num_missed: np.ndarray


def missed_by_length(matching: Matching, tiou: float = 0.5) -> MissedByLength:
    """Bucket the false negatives at ``tiou`` by GT length (DETAD bins, seconds)."""
    t = matching.threshold_index(tiou)
    gt = matching.gt
    found = np.zeros(len(gt.labels), dtype=bool)
    hits = matching.matched_gt[t]
    found[hits[hits >= 0]] = True
    length_sec = gt.t_end_sec - gt.t_start_sec
    in_bin = [(length_sec > lo) & (length_sec <= hi) for _, lo, hi in LENGTH_BINS_SEC]
    return MissedByLength(
        bins=tuple(name for name, _, _ in LENGTH_BINS_SEC),
        edges_sec=tuple((lo, hi) for _, lo, hi in LENGTH_BINS_SEC),
        num_gt=np.asarray([int(m.sum()) for m in in_bin], dtype=np.int64),
        num_missed=np.asarray([int((m & ~found).sum()) for m in in_bin], dtype=np.int64),
    )


def per_video_ap(matching: Matching) -> dict[str, float]:
    """AP of each GT video alone: mean over its GT classes and over all matched thresholds.

    Matching is independent per (class, video), so the global TP flags restricted to one video are
    that video's own matching. Videos without GT in the split are left out.
    """
    gt, pred = matching.gt, matching.pred
    n_thr = len(matching.tiou_thresholds)
    sums = np.zeros(len(gt.video_names))
    counts = np.zeros(len(gt.video_names))
    for c in matching.class_ids.tolist():
        rows = np.flatnonzero(pred.labels == c)
        rows = rows[score_visit_order(pred.scores[rows])]
        g_vids, n_gt = np.unique(gt.video_index[gt.labels == c], return_counts=True)
        for v, n in zip(g_vids.tolist(), n_gt.tolist()):
            r = rows[matching.pred_gt_video[rows] == v]
            counts[v] += 1
            if not len(r):
                continue
            tp_cum = np.cumsum(matching.is_tp[:, r], axis=1, dtype=np.float64)
            precision = tp_cum / np.arange(1, len(r) + 1, dtype=np.float64)
            sums[v] += sum(interpolated_ap(precision[t], tp_cum[t] / n) for t in range(n_thr)) / n_thr
    return {name: float(sums[i] / counts[i]) for i, name in enumerate(gt.video_names) if counts[i] > 0}


def pick_videos(video_ap: Mapping[str, float]) -> dict[str, str]:
    """Best, median and worst video by AP (ties broken by video id, so the choice is deterministic)."""
    if not video_ap:
        return {}
    ranked = sorted(video_ap, key=lambda v: (-video_ap[v], v))
    return {"best": ranked[0], "median": ranked[(len(ranked) - 1) // 2], "worst": ranked[-1]}
