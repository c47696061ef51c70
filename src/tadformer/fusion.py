"""ActivityNet fusion with external video-level classification scores.

ActionFormer's ActivityNet recipe runs the detector class-agnostically and takes the action classes
from a separate video classifier (the CUHK file ``cuhk_val_simp_share.json``:
``{"results": {video_id: [one score per class]}, "class": [class names]}``, bare YouTube ids with
no ``v_`` prefix). :func:`fuse_ext_scores` reproduces the official ``postprocess_results`` bit for bit:

* videos are handled in Python ``sorted()`` order of their ids (code-point order);
* a video's detections are ordered by score, highest first, and cut to ``num_pred``;
* the ``topk`` classes with the highest external scores are taken, and the video's output is all N
  kept segments with the best class, then the same N segments with the second class, and so on;
* ``label`` is the index of the class in the file's ``class`` list, ``score`` is
  ``sqrt(ext_score * det_score)`` in float64, and the detector's own labels are ignored.

Both orderings use "ascending argsort, reversed", as the official code does. The official call is
NumPy's default (unstable) sort, so the order of exactly tied scores there depends on the NumPy build;
here a stable sort is reversed, so tied items always come out last-in-input first (for classes: the
higher class index first). Without ties both give the same order.

:func:`map_class_labels` turns the class indices of the score file into the annotation's ``label_id``
by class name (the official code uses the index as is; the two agree whenever the annotation's label
ids follow the order of the file's ``class`` list).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class ExtScoreError(ValueError):
    """An external classification score file, or its use with a set of detections, is invalid."""


@dataclass(frozen=True, eq=False)
class ExtScores:
    """External video-level classification scores.

    Attributes:
        class_names: the class names, in the order of each score vector.
        scores: video id (as in the file, no ``v_`` prefix) -> float64 [num_classes].
        source: the file the scores were read from (only used in error messages).
    """

    class_names: tuple[str, ...]
    scores: dict[str, np.ndarray]
    source: str | None = field(default=None, compare=False)


@dataclass(frozen=True, eq=False)
class FusedDetections:
    """Fused detections as flat arrays (the official ``video-id``/``t-start``/... layout).

    Attributes:
        video_ids: [M] video id of each row.
        t_start, t_end: [M] float64 (the detector's values, widened exactly).
        labels: [M] int64 index into ``ExtScores.class_names``.
        scores: [M] float64 ``sqrt(ext_score * det_score)``.
    """

    video_ids: list[str]
    t_start: np.ndarray
    t_end: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _is_number(v: object) -> bool:
    return type(v) in (int, float)  # JSON numbers only: bools, strings and nulls are rejected


def read_ext_scores(path: str | Path) -> ExtScores:
    """Read an external classification score file in the CUHK ActivityNet layout.

    Raises FileNotFoundError if the file does not exist, and :class:`ExtScoreError` for invalid JSON, missing
    ``results``/``class``, duplicate class names, or a video whose scores are not one finite number per class.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"external score file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ExtScoreError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise ExtScoreError(f"{path}: invalid JSON (not UTF-8 text: {exc.reason})") from None
    if not isinstance(data, dict):
        raise ExtScoreError(f"{path}: expected a JSON object with 'results' and 'class', got {type(data).__name__}")
    for key in ("results", "class"):
        if key not in data:
            raise ExtScoreError(f"{path}: missing key '{key}' (expected {{'results': {{video_id: [scores]}}, "
                                f"'class': [names]}})")
    results, names = data["results"], data["class"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ExtScoreError(f"{path}: 'class' must be a non-empty list of class names (strings)")
    dups = sorted(n for n, count in Counter(names).items() if count > 1)
    if dups:
        raise ExtScoreError(f"{path}: duplicate class names in 'class': {', '.join(repr(n) for n in dups)}")
    if not isinstance(results, dict):
        raise ExtScoreError(f"{path}: 'results' must map video ids to score lists, got {type(results).__name__}")
    num_classes = len(names)
    scores: dict[str, np.ndarray] = {}
    for vid, vals in results.items():
        if not isinstance(vals, list):
            raise ExtScoreError(f"{path}: video '{vid}': scores must be a list, got {type(vals).__name__}")
        if len(vals) != num_classes:
            raise ExtScoreError(f"{path}: video '{vid}' has {len(vals)} scores, expected {num_classes} (one per class)")
        if not all(_is_number(v) for v in vals):
            j = next(i for i, v in enumerate(vals) if not _is_number(v))
            raise ExtScoreError(f"{path}: video '{vid}': non-numeric score {vals[j]!r} for class '{names[j]}'")
        arr = np.asarray(vals, dtype=np.float64)  # [num_classes]
        if not np.isfinite(arr).all():
            j = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise ExtScoreError(f"{path}: video '{vid}': non-finite score {vals[j]!r} for class '{names[j]}'")
        scores[vid] = arr
    return ExtScores(class_names=tuple(names), scores=scores, source=str(path))


def _descending(values: np.ndarray) -> np.ndarray:
    """Indices sorting ``values`` highest first: a stable ascending argsort, reversed (see module doc)."""
    return np.argsort(values, kind="stable")[::-1]


def _missing_video_message(vid: str, ext: ExtScores) -> str:
    where = f" {ext.source}" if ext.source else ""
    hint = ""
    if vid.startswith("v_") and vid[2:] in ext.scores:
        hint = f" (the file has '{vid[2:]}': detections must use bare ids, without the 'v_' prefix)"
    elif f"v_{vid}" in ext.scores:
        hint = f" (the file has 'v_{vid}': its ids must be bare, without the 'v_' prefix)"
    return f"video '{vid}' has detections but no entry in the external score file{where}{hint}"


def fuse_ext_scores(
    video_ids: Sequence[str],
    t_start: np.ndarray,
    t_end: np.ndarray,
    scores: np.ndarray,
    ext: ExtScores,
    num_pred: int = 200,
    topk: int = 2,
) -> FusedDetections:
    """Replace the detector's classes by the ``topk`` external classes of each video (official fusion).

    Args:
        video_ids: [N] the video id of each detection (bare ids, as in the score file).
        t_start, t_end, scores: [N] float32 or float64 detection boundaries and scores.
        ext: the external scores (:func:`read_ext_scores`).
        num_pred: detections kept per video (highest scores) before duplication.
        topk: external classes per video.

    Returns the fused detections: per video (``sorted()`` order) ``topk`` blocks of ``min(n, num_pred)`` rows.

    Raises:
        ExtScoreError: a video of the detections has no external scores, or its score vector does not
            match ``ext.class_names``.
        ValueError: mismatched input lengths, or ``num_pred``/``topk`` out of range.
    """
    vids = [str(v) for v in video_ids]
    # exact widening of float32 values, as the official float(...) conversion does
    starts = np.asarray(t_start, dtype=np.float64).reshape(-1)  # [N]
    ends = np.asarray(t_end, dtype=np.float64).reshape(-1)  # [N]
    det_scores = np.asarray(scores, dtype=np.float64).reshape(-1)  # [N]
    n = len(vids)
    if not (starts.shape[0] == ends.shape[0] == det_scores.shape[0] == n):
        raise ValueError(f"fuse_ext_scores: inputs differ in length (video_ids {n}, t_start {starts.shape[0]}, "
                         f"t_end {ends.shape[0]}, scores {det_scores.shape[0]})")
    num_classes = len(ext.class_names)
    if num_pred < 1:
        raise ValueError(f"fuse_ext_scores: num_pred must be >= 1, got {num_pred}")
    if not 1 <= topk <= num_classes:
        raise ValueError(f"fuse_ext_scores: topk must be in [1, {num_classes}] (the number of classes), got {topk}")

    rows: dict[str, list[int]] = {}
    for i, vid in enumerate(vids):
        rows.setdefault(vid, []).append(i)

    out_vids: list[str] = []
    parts: dict[str, list[np.ndarray]] = {"start": [], "end": [], "label": [], "score": []}
    for vid in sorted(rows):
        if vid not in ext.scores:
            raise ExtScoreError(_missing_video_message(vid, ext))
        cls_scores = np.asarray(ext.scores[vid], dtype=np.float64)  # [C]
        if cls_scores.shape != (num_classes,):
            raise ExtScoreError(f"video '{vid}': {cls_scores.size} external scores for {num_classes} classes")
        top_idx = _descending(cls_scores)[:topk]  # [K]
        top_score = cls_scores[top_idx]  # [K]
        idx = np.asarray(rows[vid], dtype=np.int64)  # [n_v] input order
        keep = idx[_descending(det_scores[idx])[:num_pred]]  # [N_v], N_v = min(n_v, num_pred)
        n_v = keep.shape[0]
        # [K, 1] x [1, N_v] -> [K, N_v] -> [K*N_v]: block k holds every kept detection with class k
        parts["score"].append(np.sqrt(np.multiply.outer(top_score, det_scores[keep])).reshape(-1))
        parts["start"].append(np.tile(starts[keep], topk))  # [K*N_v]
        parts["end"].append(np.tile(ends[keep], topk))  # [K*N_v]
        parts["label"].append(np.repeat(top_idx.astype(np.int64), n_v))  # [K*N_v]
        out_vids.extend([vid] * (topk * n_v))

    def cat(key: str, dtype: type) -> np.ndarray:
        return np.concatenate(parts[key]).astype(dtype, copy=False) if parts[key] else np.zeros(0, dtype)

    return FusedDetections(video_ids=out_vids, t_start=cat("start", np.float64), t_end=cat("end", np.float64),
                           labels=cat("label", np.int64), scores=cat("score", np.float64))


def map_class_labels(
    fused_labels: np.ndarray,
    ext_class_names: Sequence[str],
    annotation_name_to_id: Mapping[str, int],
) -> np.ndarray:
    """Map class indices of the external score file to the annotation's ``label_id``, by class name.

    Only the classes that occur in ``fused_labels`` must be known to the annotation. This is the
    identity whenever the annotation numbers its classes in the order of the file's ``class`` list.

    ``fused_labels`` [M] index ``ext_class_names`` (``ExtScores.class_names``); ``annotation_name_to_id``
    is the annotation's ``label_dict``. Returns [M] int64 ``label_id``. Raises :class:`ExtScoreError` for
    an index outside the class list or class names the annotation does not know.
    """
    labels = np.asarray(fused_labels).reshape(-1)  # [M]
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ExtScoreError(f"class labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    num_classes = len(ext_class_names)
    used = np.unique(labels)  # [U]
    bad = used[(used < 0) | (used >= num_classes)]
    if bad.size:
        raise ExtScoreError(f"class index {int(bad[0])} is outside the {num_classes} external classes")
    table = np.full(num_classes, -1, dtype=np.int64)  # [C] ext index -> label_id (-1: unused)
    unknown: list[str] = []
    for j in used.tolist():
        name = ext_class_names[j]
        if name in annotation_name_to_id:
            table[j] = int(annotation_name_to_id[name])
        else:
            unknown.append(name)
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise ExtScoreError(f"external class name(s) not found in the annotation's classes: "
                            f"{', '.join(repr(n) for n in unknown[:10])}{more}")
    return table[labels]
