"""Reading and writing detection results in the ActivityNet result format.

The format (``predictions.json``) is::

    {"version": "VERSION 1.3",
     "results": {video_id: [{"label": str, "label_id": int, "score": float,
                             "segment": [start_sec, end_sec]}, ...]},
     "external_data": {}}

Scores and times are written as the exact float64 value of their float32 source, so reading
the file back gives bit-identical numbers. Values read from a file keep the precision they have
there (float64, as the official evaluator reads them): a file from another tool is never rounded
to float32, which could move a tIoU across a threshold. Writes are atomic (temp file + fsync +
``os.replace``). :func:`flatten_results` turns either this format or the official flat dict
(``video-id``, ``t-start``, ``t-end``, ``label``, ``score``) into :class:`FlatDetections`,
the input of :mod:`tadformer.metrics`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

RESULTS_VERSION = "VERSION 1.3"
_FLAT_KEYS = ("video-id", "t-start", "t-end", "label", "score")


class ResultsFormatError(ValueError):
    """A result file or structure does not follow the expected format."""


class DetectionsLike(Protocol):
    """Anything holding one video's detections (e.g. ``tadformer.postprocess.Detections``)."""

    video_id: str
    segments_sec: Any  # [K, 2] array-like (numpy or CPU/GPU tensor), seconds
    scores: Any  # [K]
    labels: Any  # [K] integer class ids


@dataclass(frozen=True)
class FlatDetections:
    """All detections of a run as flat arrays, in input order (videos, then detections).

    Attributes:
        video_names: unique video ids in first-appearance order.
        video_index: [N] int64 index into ``video_names`` for each detection.
        t_start_sec, t_end_sec: [N] float64, the values as given (exact float32 values for
            tadformer's own detections, the file's float64 values for a result file).
        labels: [N] int64 class ids (``label_id``).
        scores: [N] float64, as given.
    """

    video_names: list[str]
    video_index: np.ndarray
    t_start_sec: np.ndarray
    t_end_sec: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, possibly on an accelerator
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_f64(values: Any) -> np.ndarray:
    """Widen to float64 without rounding: float32 input stays its exact value, float64 stays as is."""
    return np.asarray(values, dtype=np.float64)


def _bad_item(source: str, video_id: str, items: Any) -> ResultsFormatError:
    """Find the first malformed detection of a video and describe it precisely."""
    if not isinstance(items, list):
        return ResultsFormatError(
            f"{source}: results[{video_id!r}] must be a list, got {type(items).__name__}"
        )
    for i, det in enumerate(items):
        where = f"{source}: results[{video_id!r}][{i}]"
        if not isinstance(det, Mapping):
            return ResultsFormatError(f"{where} must be an object, got {type(det).__name__}")
        for key in ("label_id", "score", "segment"):
            if key not in det:
                return ResultsFormatError(f"{where} is missing key {key!r}")
        seg = det["segment"]
        if not (isinstance(seg, Sequence) and len(seg) == 2 and all(isinstance(v, int | float) for v in seg)):
            return ResultsFormatError(f"{where} has a bad segment {seg!r}: expected [start_sec, end_sec]")
        if not isinstance(det["score"], int | float) or isinstance(det["score"], bool):
            return ResultsFormatError(f"{where} has a non-numeric score {det['score']!r}")
        if not isinstance(det["label_id"], int) or isinstance(det["label_id"], bool):
            return ResultsFormatError(f"{where} has a non-integer label_id {det['label_id']!r}")
    return ResultsFormatError(f"{source}: results[{video_id!r}] is malformed")


def _flatten_anet(results: Mapping[str, Any], source: str) -> FlatDetections:
    names: list[str] = []
    counts: list[int] = []
    segs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for video_id, items in results.items():
        try:
            seg = np.asarray([d["segment"] for d in items], dtype=np.float64).reshape(len(items), 2)
            lab = np.asarray([d["label_id"] for d in items])
            sco = np.asarray([d["score"] for d in items])
            if len(items) and (lab.dtype.kind not in "iu" or sco.dtype.kind not in "iuf"):
                raise TypeError("non-integer label_id or non-numeric score")
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise _bad_item(source, str(video_id), items) from err
        names.append(str(video_id))
        counts.append(len(items))
        segs.append(seg)
        labels.append(lab.astype(np.int64))
        scores.append(sco)
    seg_all = np.concatenate(segs) if segs else np.zeros((0, 2))
    return FlatDetections(
        video_names=names,
        video_index=np.repeat(np.arange(len(names), dtype=np.int64), counts),
        t_start_sec=_as_f64(seg_all[:, 0]),
        t_end_sec=_as_f64(seg_all[:, 1]),
        labels=np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64),
        scores=_as_f64(np.concatenate(scores)) if scores else np.zeros(0),
    )


def _flatten_flat(flat: Mapping[str, Any], source: str) -> FlatDetections:
    video_ids = [str(v) for v in flat["video-id"]]
    arrays = {k: _to_numpy(flat[k]).reshape(-1) for k in _FLAT_KEYS[1:]}
    for key, arr in arrays.items():
        if arr.shape[0] != len(video_ids):
            raise ResultsFormatError(
                f"{source}: {key!r} has {arr.shape[0]} entries but 'video-id' has {len(video_ids)}"
            )
    if arrays["label"].size and not np.issubdtype(arrays["label"].dtype, np.integer):
        raise ResultsFormatError(
            f"{source}: 'label' must hold integer class ids, got {arrays['label'].dtype}"
        )
    names = list(dict.fromkeys(video_ids))
    lookup = {name: i for i, name in enumerate(names)}
    return FlatDetections(
        video_names=names,
        video_index=np.asarray([lookup[v] for v in video_ids], dtype=np.int64),
        t_start_sec=_as_f64(arrays["t-start"]),
        t_end_sec=_as_f64(arrays["t-end"]),
        labels=arrays["label"].astype(np.int64),
        scores=_as_f64(arrays["score"]),
    )


def flatten_results(
    predictions: Mapping[str, Any] | FlatDetections, source: str = "predictions"
) -> FlatDetections:
    """Flatten predictions in JSON order into :class:`FlatDetections`.

    Args:
        predictions: the ActivityNet result format (a dict with ``results``), the official flat
            dict (``video-id`` list + ``t-start``/``t-end``/``label``/``score`` arrays), or an
            already flat :class:`FlatDetections` (returned unchanged).
        source: name used in error messages (e.g. the file path).

    Raises:
        ResultsFormatError: naming the video, the detection index and what is wrong.
    """
    if isinstance(predictions, FlatDetections):
        return predictions
    if not isinstance(predictions, Mapping):
        raise ResultsFormatError(f"{source}: expected a dict, got {type(predictions).__name__}")
    if "results" in predictions:
        results = predictions["results"]
        if not isinstance(results, Mapping):
            raise ResultsFormatError(f"{source}: 'results' must map video ids to lists of detections")
        return _flatten_anet(results, source)
    if all(k in predictions for k in _FLAT_KEYS):
        return _flatten_flat(predictions, source)
    raise ResultsFormatError(
        f"{source}: expected the ActivityNet result format (key 'results') or a flat dict with keys "
        f"{list(_FLAT_KEYS)}; got keys {sorted(map(str, predictions))[:10]}"
    )


def _class_name(label: int, class_names: Sequence[str] | Mapping[int, str] | None) -> str:
    if class_names is None:
        return str(label)
    try:
        return str(class_names[label])
    except (IndexError, KeyError) as err:
        raise ValueError(f"label id {label} has no entry in class_names") from err


def _keep_precision(x: np.ndarray) -> np.ndarray:
    """float64 stays float64 (e.g. scores after score fusion); anything else is the pipeline's float32."""
    return x if x.dtype == np.float64 else x.astype(np.float32)


def _rows(detections: DetectionsLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    segs = _keep_precision(_to_numpy(detections.segments_sec)).reshape(-1, 2)
    scores = _keep_precision(_to_numpy(detections.scores)).reshape(-1)
    labels = _to_numpy(detections.labels).astype(np.int64).reshape(-1)
    if not segs.shape[0] == scores.shape[0] == labels.shape[0]:
        raise ValueError(
            f"video {detections.video_id!r}: segments_sec {segs.shape[0]}, scores {scores.shape[0]} and "
            f"labels {labels.shape[0]} must have the same length"
        )
    return segs, scores, labels


def results_to_dict(
    detections: Iterable[DetectionsLike], class_names: Sequence[str] | Mapping[int, str] | None = None
) -> dict[str, Any]:
    """Build the ActivityNet result dict (videos in the given order, detections in row order)."""
    results: dict[str, list[dict[str, Any]]] = {}
    for det in detections:
        segs, scores, labels = _rows(det)
        if det.video_id in results:
            raise ValueError(f"video {det.video_id!r} appears twice in the detections")
        results[det.video_id] = [
            {
                "label": _class_name(int(lab), class_names),
                "label_id": int(lab),
                "score": float(sco),
                "segment": [float(seg[0]), float(seg[1])],
            }
            for seg, sco, lab in zip(segs, scores, labels)
        ]
    return {"version": RESULTS_VERSION, "results": results, "external_data": {}}


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_results_json(
    path: str | os.PathLike[str],
    detections: Iterable[DetectionsLike],
    class_names: Sequence[str] | Mapping[int, str] | None = None,
) -> None:
    """Write detections to ``path`` in the ActivityNet result format, atomically."""
    atomic_write_text(path, json.dumps(results_to_dict(detections, class_names)))


def write_results_csv(
    path: str | os.PathLike[str],
    detections: Iterable[DetectionsLike],
    class_names: Sequence[str] | Mapping[int, str] | None = None,
) -> None:
    """Write one row per detection: video_id, label_id, label, score, t_start_sec, t_end_sec."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["video_id", "label_id", "label", "score", "t_start_sec", "t_end_sec"])
    for det in detections:
        segs, scores, labels = _rows(det)
        for seg, sco, lab in zip(segs, scores, labels):
            name = _class_name(int(lab), class_names)
            writer.writerow(
                [det.video_id, int(lab), name, repr(float(sco)), repr(float(seg[0])), repr(float(seg[1]))]
            )
    atomic_write_text(path, buf.getvalue())


def read_json(path: str | os.PathLike[str], what: str, error: type[ValueError] = ValueError) -> Any:
    """Parse a JSON file; a missing file raises ``FileNotFoundError`` naming ``what`` (e.g. "annotation
    file") and invalid JSON raises ``error`` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path} is not a valid JSON file ({exc})") from None


def read_results_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an ActivityNet result file; the returned dict feeds ``evaluate_detections``.

    Raises:
        FileNotFoundError: if the file does not exist.
        ResultsFormatError: for invalid JSON or any malformed entry (file, video, index and key named).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ResultsFormatError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise ResultsFormatError(
            f"{path}: expected an object with a 'results' dict (ActivityNet result format)"
        )
    flatten_results(data, source=str(path))  # validates every detection
    return data
