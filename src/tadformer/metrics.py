"""ActivityNet-style detection mAP, numerically identical to the official ``ANETdetection``.

Reproduced behaviour (SPEC §7):

- GT: videos whose ``subset.lower() == split``; per video an annotation is dropped when its
  length is < 1e-3 or when an earlier *kept* one has the same ``label_id`` and both boundaries
  within 1e-3. Classes are the sorted GT label ids; predictions of other labels are ignored.
- Per class, predictions are visited in ``np.argsort(score)[::-1]`` order (NumPy's default
  sort, over the class's rows in input order: this decides how ties are broken). Each
  prediction tries the GTs of its video in reversed-argsort tIoU order: tIoU < thr -> FP;
  GT locked at this threshold -> next GT; else TP and lock. VOC2011 interpolated AP.

Speed: locks belong to one GT, hence to one video, so the greedy matching runs independently
per (class, video) block, in the class's global visiting order restricted to that block. The
tIoUs and the GT order of a block are computed in one vectorised step; when no prediction has
two GTs above the threshold the matching is a "first prediction per GT" lookup, otherwise a
short loop over the predictions that have candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tadformer.data.rules import kept_after_dedup
from tadformer.results_io import FlatDetections, flatten_results

DEDUP_TOL_SEC = 1e-3
# official defaults: linspace(0.3, 0.7, 5), whose second value is 0.39999999999999997
DEFAULT_TIOU_THRESHOLDS: tuple[float, ...] = tuple(np.linspace(0.3, 0.7, 5).tolist())


@dataclass(frozen=True)
class EvalResult:
    """Evaluation output. Arrays are float64; APs and recalls are fractions in [0, 1].

    Attributes:
        tiou_thresholds: [T] thresholds.
        mAP: [T] mean AP over ``class_ids`` per threshold.
        average_mAP: mean of ``mAP``.
        ap_per_class: [T, K] AP, columns in ``class_ids`` order.
        class_ids: [K] sorted label ids having GT in the split.
        top_k: the k of the Recall@kx columns.
        recall_topk: [T, len(top_k)] official top-k x n_gt recall (class mean; informational).
        num_gt: GT count after de-duplication.
        num_predictions: flattened prediction count (including ignored labels).
    """

    tiou_thresholds: np.ndarray
    mAP: np.ndarray
    average_mAP: float
    ap_per_class: np.ndarray
    class_ids: np.ndarray
    top_k: tuple[int, ...]
    recall_topk: np.ndarray
    num_gt: int
    num_predictions: int

    def to_dict(self, class_names: Sequence[str] | Mapping[int, str] | None = None) -> dict[str, Any]:
        """JSON-ready dict for ``metrics.json``; per-class AP keyed by class name when given."""

        def name(cid: int) -> str:
            try:
                return str(class_names[cid]) if class_names is not None else str(cid)
            except (IndexError, KeyError):  # e.g. a class-agnostic model scored against the GT classes
                return str(cid)

        return {
            "tiou_thresholds": [float(t) for t in self.tiou_thresholds],
            "mAP": [float(v) for v in self.mAP],
            "mAP_by_tiou": {f"{t:.2f}": float(v) for t, v in zip(self.tiou_thresholds, self.mAP)},
            "average_mAP": float(self.average_mAP),
            "class_ids": [int(c) for c in self.class_ids],
            "ap_per_class": {
                name(int(c)): [float(v) for v in self.ap_per_class[:, i]]
                for i, c in enumerate(self.class_ids)
            },
            "recall_topk": {"top_k": list(self.top_k), "values": self.recall_topk.tolist()},
            "num_gt": self.num_gt,
            "num_predictions": self.num_predictions,
        }


@dataclass(frozen=True)
class GroundTruth:
    """De-duplicated GT of one split: video names and flat [M] arrays (seconds, float64)."""

    video_names: list[str]
    video_index: np.ndarray
    t_start_sec: np.ndarray
    t_end_sec: np.ndarray
    labels: np.ndarray


def load_ground_truth(
    ground_truth: Mapping[str, Any], split: str = "test", tol: float = DEDUP_TOL_SEC
) -> GroundTruth:
    """Read GT of ``split`` from an ActionFormer/ActivityNet json dict (with ``database``).

    Raises:
        ValueError: on a missing ``database`` or a malformed video / annotation (named).
    """
    db = ground_truth.get("database") if isinstance(ground_truth, Mapping) else None
    if not isinstance(db, Mapping):
        raise ValueError("ground truth: expected a dict with a 'database' mapping video ids to entries")
    names: list[str] = []
    vidx: list[int] = []
    starts: list[float] = []
    ends: list[float] = []
    labels: list[int] = []
    for video_id, entry in db.items():
        try:
            if str(entry["subset"]).lower() != split:
                continue
            anns = entry["annotations"]
            s = [float(a["segment"][0]) for a in anns]
            e = [float(a["segment"][1]) for a in anns]
            lab = [int(a["label_id"]) for a in anns]
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise ValueError(
                f"ground truth: video {video_id!r} is malformed ({err!r}); expected 'subset' and "
                "'annotations' with 'segment' [start_sec, end_sec] and 'label_id'"
            ) from err
        keep = kept_after_dedup(np.asarray(s), np.asarray(e), np.asarray(lab), tol) if anns else []
        vidx.extend([len(names)] * len(keep))
        names.append(str(video_id))
        starts.extend(s[i] for i in keep)
        ends.extend(e[i] for i in keep)
        labels.extend(lab[i] for i in keep)
    return GroundTruth(
        names,
        np.asarray(vidx, dtype=np.int64),
        np.asarray(starts, dtype=np.float64),
        np.asarray(ends, dtype=np.float64),
        np.asarray(labels, dtype=np.int64),
    )


def score_visit_order(scores: np.ndarray) -> np.ndarray:
    """Official visiting order ``argsort(score)[::-1]`` (default sort kind; decides tie order)."""
    return np.argsort(np.asarray(scores, dtype=np.float64))[::-1]


def block_tiou(p_start: np.ndarray, p_end: np.ndarray, g_start: np.ndarray, g_end: np.ndarray) -> np.ndarray:
    """[P, G] tIoU in float64, with the official operation order (``segment_iou``)."""
    inter = (
        np.minimum(p_end[:, None], g_end[None, :]) - np.maximum(p_start[:, None], g_start[None, :])
    ).clip(0)
    union = (g_end - g_start)[None, :] + (p_end - p_start)[:, None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 = NaN for a reversed zero-union pair, as official
        return inter / union


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC2011 interpolated AP (official ``interpolated_prec_rec``) for 1-D curves."""
    mprec = np.hstack([[0.0], precision, [0.0]])
    mrec = np.hstack([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def match_block(iou: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Greedy matching of one (class, video) block, rows in visiting order (official rule).

    Args:
        iou: ``[P, G]`` tIoU of the block's predictions (visiting order) with its GT.
        thresholds: ``[T]`` tIoU thresholds.

    Returns:
        ``[T, P]`` int64: the GT column each prediction matched at each threshold, -1 for a FP.
    """
    n_pred, n_gt = iou.shape
    order = np.argsort(iou, axis=1)[:, ::-1]  # official per-prediction GT order, ties included
    iou_sorted = np.take_along_axis(iou, order, axis=1)
    # a GT is a candidate unless its tIoU is below the threshold: a NaN tIoU (reversed prediction, zero
    # union) sorts first and is "not below", so it matches, as in the official loop
    n_cand = (~(iou_sorted[None, :, :] < thresholds[:, None, None])).sum(axis=2)  # [T, P]; a prefix per row
    # Fast path: a row with a single candidate is TP iff it is the first row wanting that GT.
    wants = (n_cand == 1)[:, :, None] & (order[:, :1] == np.arange(n_gt))[None, :, :]  # [T, P, G]
    first = wants.argmax(axis=1)  # [T, G]
    t_idx, g_idx = np.nonzero(wants.any(axis=1))
    matched = np.full((len(thresholds), n_pred), -1, dtype=np.int64)
    matched[t_idx, first[t_idx, g_idx]] = g_idx
    for t in np.flatnonzero(n_cand.max(axis=1) > 1).tolist():  # some row has two candidates: sequential
        matched[t] = -1
        rows = np.flatnonzero(n_cand[t])
        prefs = order[rows].tolist()
        locked: set[int] = set()
        for r, pref, n in zip(rows.tolist(), prefs, n_cand[t, rows].tolist()):
            for g in pref[:n]:
                if g not in locked:
                    locked.add(g)
                    matched[t, r] = g
                    break
    return matched


def _topk_counts(
    iou_input_order: np.ndarray, scores: np.ndarray, top_k: Sequence[int], thr: np.ndarray
) -> np.ndarray:
    """Official top-k x n_gt recall numerator of one block ([T, len(top_k)] covered-GT counts)."""
    n_gt = iou_input_order.shape[1]
    top = np.argsort(scores)[::-1][: max(top_k) * n_gt]
    iou = iou_input_order[top]
    out = np.zeros((len(thr), len(top_k)))
    for j, k in enumerate(top_k):
        hit = iou[: k * n_gt, None, :] >= thr[None, :, None]  # [n, T, G]
        out[:, j] = hit.any(axis=0).sum(axis=1)
    return out


def _evaluate_class(
    gt: GroundTruth,
    g_rows: np.ndarray,
    pred: FlatDetections,
    p_rows: np.ndarray,
    p_gt_video: np.ndarray,
    thresholds: np.ndarray,
    top_k: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """AP [T] and top-k recall [T, len(top_k)] of one class (``p_rows`` in input order)."""
    n_thr = len(thresholds)
    if len(p_rows) == 0:
        return np.zeros(n_thr), np.zeros((n_thr, len(top_k)))
    visit = p_rows[score_visit_order(pred.scores[p_rows])]
    tp = np.zeros((n_thr, len(visit)), dtype=bool)
    recall_hits = np.zeros((n_thr, len(top_k)))
    p_vid = p_gt_video[visit]
    g_vid = gt.video_index[g_rows]
    p_by_vid = np.argsort(p_vid, kind="stable")
    g_by_vid = g_rows[np.argsort(g_vid, kind="stable")]
    g_videos, g_first, g_count = np.unique(gt.video_index[g_by_vid], return_index=True, return_counts=True)
    p_videos, p_first, p_count = np.unique(p_vid[p_by_vid], return_index=True, return_counts=True)
    _, gi, pi = np.intersect1d(g_videos, p_videos, assume_unique=True, return_indices=True)
    for a, b in zip(gi.tolist(), pi.tolist()):
        g_blk = g_by_vid[g_first[a] : g_first[a] + g_count[a]]
        pos = p_by_vid[p_first[b] : p_first[b] + p_count[b]]  # ranks, ascending = visiting order
        rows = visit[pos]
        iou = block_tiou(
            pred.t_start_sec[rows], pred.t_end_sec[rows], gt.t_start_sec[g_blk], gt.t_end_sec[g_blk]
        )
        tp[:, pos] = match_block(iou, thresholds) >= 0
        inp = np.argsort(rows)  # the block's rows back in input order, as the recall code sees them
        recall_hits += _topk_counts(iou[inp], pred.scores[rows[inp]], top_k, thresholds)
    npos = float(len(g_rows))
    tp_cum = np.cumsum(tp, axis=1, dtype=np.float64)
    fp_cum = np.cumsum(~tp, axis=1, dtype=np.float64)
    recall = tp_cum / npos
    precision = tp_cum / (tp_cum + fp_cum)
    ap = np.array([interpolated_ap(precision[t], recall[t]) for t in range(n_thr)])
    return ap, recall_hits / npos


def evaluate_detections(
    ground_truth: Mapping[str, Any] | GroundTruth,
    predictions: Mapping[str, Any] | FlatDetections,
    split: str = "test",
    tiou_thresholds: Sequence[float] | np.ndarray = DEFAULT_TIOU_THRESHOLDS,
    top_k: Sequence[int] = (1, 5),
) -> EvalResult:
    """Score detections exactly like the official ``ANETdetection.evaluate``.

    Args:
        ground_truth: parsed ActionFormer/ActivityNet json (with ``database``) or a :class:`GroundTruth`.
        predictions: ActivityNet result dict (``results``), the official flat dict
            (``video-id``, ``t-start``, ``t-end``, ``label``, ``score``) or :class:`FlatDetections`.
            Times/scores keep their precision (float32 tensors their exact value, float64 file
            values their full value) and are computed in float64, like the official evaluator.
        split: subset name, compared with ``subset.lower()``.
        tiou_thresholds: [T] tIoU thresholds.
        top_k: k values of the informational Recall@kx.

    Returns:
        EvalResult with mAP per threshold, average mAP, per-class AP and top-k recall.
    """
    gt = ground_truth if isinstance(ground_truth, GroundTruth) else load_ground_truth(ground_truth, split)
    pred = flatten_results(predictions)
    thresholds = np.asarray(tiou_thresholds, dtype=np.float64).reshape(-1)
    class_ids = np.unique(gt.labels)
    gt_lookup = {name: i for i, name in enumerate(gt.video_names)}
    video_map = np.asarray([gt_lookup.get(v, -1) for v in pred.video_names], dtype=np.int64)
    p_gt_video = video_map[pred.video_index] if len(pred) else np.zeros(0, dtype=np.int64)
    # The official evaluator renumbers the GT label ids to their rank among the sorted ids present and
    # applies the same map to the predictions; a predicted label without GT keeps its value, so it can
    # collide with a renumbered class (identity whenever the ids present are 0..K-1, as for THUMOS14).
    ranks = np.arange(len(class_ids))
    gt_rank = np.searchsorted(class_ids, gt.labels)
    pos = np.searchsorted(class_ids, pred.labels).clip(max=max(len(class_ids) - 1, 0))
    known = (class_ids[pos] == pred.labels) if len(class_ids) else np.zeros(len(pred), dtype=bool)
    pred_rank = np.where(known, pos, pred.labels)
    g_sorted = np.argsort(gt_rank, kind="stable")
    p_sorted = np.argsort(pred_rank, kind="stable")
    g_lo, g_hi = np.searchsorted(gt_rank[g_sorted], ranks, "left"), np.searchsorted(gt_rank[g_sorted], ranks, "right")
    p_lo, p_hi = (np.searchsorted(pred_rank[p_sorted], ranks, "left"),
                  np.searchsorted(pred_rank[p_sorted], ranks, "right"))
    ap = np.zeros((len(thresholds), len(class_ids)))
    recall = np.zeros((len(thresholds), len(top_k), len(class_ids)))
    for c in range(len(class_ids)):
        ap[:, c], recall[:, :, c] = _evaluate_class(
            gt, g_sorted[g_lo[c] : g_hi[c]], pred, p_sorted[p_lo[c] : p_hi[c]], p_gt_video, thresholds, top_k
        )
    mean_ap = ap.mean(axis=1)
    return EvalResult(
        tiou_thresholds=thresholds,
        mAP=mean_ap,
        average_mAP=float(mean_ap.mean()),
        ap_per_class=ap,
        class_ids=class_ids,
        top_k=tuple(int(k) for k in top_k),
        recall_topk=recall.mean(axis=2),
        num_gt=int(len(gt.labels)),
        num_predictions=len(pred),
    )


def format_map_table(result: EvalResult) -> str:
    """Markdown table of mAP (%) per tIoU plus the average, like the official README."""
    head = "| tIoU | " + " | ".join(f"{t:.2f}" for t in result.tiou_thresholds) + " | Avg |"
    sep = "|---" * (len(result.tiou_thresholds) + 2) + "|"
    row = (
        "| mAP (%) | "
        + " | ".join(f"{100 * v:.2f}" for v in result.mAP)
        + f" | {100 * result.average_mAP:.2f} |"
    )
    return "\n".join([head, sep, row])


def format_official_summary(result: EvalResult, dataset_name: str = "gt") -> list[str]:
    """The official evaluator's printout lines (mAP and Recall@kx per tIoU, then the average)."""
    lines = [f"[RESULTS] Action detection results on {dataset_name}.", ""]
    for t, m, rec in zip(result.tiou_thresholds, result.mAP, result.recall_topk):
        line = f"|tIoU = {t:.2f}: mAP = {m * 100:>4.2f} (%) "
        line += "".join(f"Recall@{k:d}x = {r * 100:>4.2f} (%) " for k, r in zip(result.top_k, rec))
        lines.append(line)
    lines.append(f"Average mAP: {result.average_mAP * 100:>4.2f} (%)")
    return lines
