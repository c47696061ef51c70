"""Read ActivityNet-style annotation json (the official THUMOS14 / ActivityNet format).

Layout: ``{"database": {video_id: {"subset", "duration", "fps", "annotations": [{"label",
"label_id", "segment": [start_sec, end_sec]}, ...]}}}``. Behaviour follows the official
``THUMOS14Dataset._load_json_db``: the label map is built from every video whatever the split,
subsets are compared lower-cased, ``default_fps`` wins over the json fps, a missing duration
becomes 1e8 s, and segments ending past the duration are kept. Everything else that is malformed
raises :class:`AnnotationError` naming the file, video and annotation index.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tadformer.data.rules import kept_after_dedup
from tadformer.data.types import VideoRecord

DEFAULT_DURATION_SEC = 1e8  # official fallback when a video has no "duration"

_THUMOS14_CLASS_NAMES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving",
    "CricketBowling", "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing",
    "HammerThrow", "HighJump", "JavelinThrow", "LongJump", "PoleVault",
    "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
)  # fmt: skip


def thumos14_class_names() -> tuple[str, ...]:
    """The 20 THUMOS14 class names, indexed by label_id (alphabetical order)."""
    return _THUMOS14_CLASS_NAMES


class AnnotationError(ValueError):
    """The annotation file is missing, malformed or inconsistent."""


@dataclass(frozen=True, eq=False)
class AnnotationSet:
    """Videos of the requested splits plus the label map of the whole file.

    Attributes:
        videos: selected videos, in json key order.
        class_names: names indexed by label_id (``""`` for ids no annotation uses).
        label_dict: label name -> label_id, built from ALL videos (as official).
        path: the json file read.
    """

    videos: list[VideoRecord]
    class_names: tuple[str, ...]
    label_dict: dict[str, int]
    path: Path

    @property
    def video_ids(self) -> list[str]:
        return [v.video_id for v in self.videos]

    def __len__(self) -> int:
        return len(self.videos)


@dataclass(frozen=True)
class _RawSegment:
    start_sec: float
    end_sec: float
    name: str
    label_id: int | None


def read_annotations(
    json_path: str | Path,
    splits: Sequence[str] | None = None,
    label_key: Literal["label_id", "label"] = "label_id",
    default_fps: float | None = None,
    remove_duplicates: bool = False,
) -> AnnotationSet:
    """Read and validate an annotation json.

    Args:
        json_path: path of the json file.
        splits: subsets to keep, compared case-insensitively (e.g. ``["validation"]``); None keeps
            every video. A name that no video uses is an error listing the existing subsets.
        label_key: ``"label_id"`` takes the class ids from the json (official THUMOS);
            ``"label"`` numbers the sorted unique label names 0..K-1 instead.
        default_fps: when set, used for every video instead of the json fps (official behaviour).
        remove_duplicates: drop too-short and repeated annotations of each video, like the official
            ActivityNet dataset (:func:`tadformer.data.rules.kept_after_dedup`); the label map still
            comes from every annotation.

    Returns:
        An :class:`AnnotationSet`.

    Raises:
        AnnotationError: unreadable/malformed json, missing keys, bad numbers, inconsistent labels,
            segments with start < 0 or start >= end, fps missing without ``default_fps``.
    """
    path = Path(json_path)
    database = _load_database(path)
    raw: dict[str, list[_RawSegment]] = {
        vid: _parse_segments(path, vid, entry, label_key) for vid, entry in database.items()
    }
    label_dict = _build_label_dict(path, raw, label_key)
    wanted = _check_splits(path, database, splits)
    videos = []
    for vid, entry in database.items():
        subset = entry["subset"]
        if wanted is not None and subset.lower() not in wanted:
            continue
        segs = raw[vid]
        if remove_duplicates and segs:
            keep = kept_after_dedup(np.array([x.start_sec for x in segs]), np.array([x.end_sec for x in segs]),
                                    np.array([label_dict[x.name] for x in segs]))
            segs = [segs[i] for i in keep]
        videos.append(
            VideoRecord(
                video_id=vid,
                subset=subset,
                fps=_video_fps(path, vid, entry, default_fps),
                duration_sec=_positive(path, vid, "duration", entry.get("duration", DEFAULT_DURATION_SEC)),
                segments_sec=np.array([[s.start_sec, s.end_sec] for s in segs], dtype=np.float64).reshape(
                    -1, 2
                ),
                labels=np.array([label_dict[s.name] for s in segs], dtype=np.int64),
                label_names=tuple(s.name for s in segs),
            )
        )
    num_ids = max(label_dict.values(), default=-1) + 1
    names = [""] * num_ids
    for name, idx in label_dict.items():
        names[idx] = name
    return AnnotationSet(videos=videos, class_names=tuple(names), label_dict=label_dict, path=path)


def _load_database(path: Path) -> dict[str, dict[str, Any]]:
    if path.is_dir():
        raise AnnotationError(f"annotation path {path} is a folder; expected the annotation json file")
    if not path.is_file():
        raise AnnotationError(f"annotation file not found: {path}")
    try:
        with path.open("r", encoding="utf-8") as f:
            content = json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(
            f"{path}: malformed or truncated json at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from e
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not a UTF-8 text json file ({e})") from e
    if not isinstance(content, dict) or "database" not in content:
        raise AnnotationError(f"{path}: expected a top-level object with a 'database' key")
    database = content["database"]
    if not isinstance(database, dict):
        raise AnnotationError(
            f"{path}: 'database' must map video ids to objects, got {type(database).__name__}"
        )
    for vid, entry in database.items():
        if not isinstance(entry, dict):
            raise AnnotationError(f"{path}: video {vid!r} must be an object, got {type(entry).__name__}")
        if not isinstance(entry.get("subset"), str):
            raise AnnotationError(f"{path}: video {vid!r} has no string 'subset'")
    return database


def _number(path: Path, vid: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnnotationError(f"{path}: video {vid!r}: {what} must be a finite number, got {value!r}")
    return float(value)


def _positive(path: Path, vid: str, what: str, value: Any) -> float:
    number = _number(path, vid, what, value)
    if number <= 0:
        raise AnnotationError(f"{path}: video {vid!r}: {what} must be > 0, got {value!r}")
    return number


def _video_fps(path: Path, vid: str, entry: dict[str, Any], default_fps: float | None) -> float:
    if default_fps is not None:
        return float(default_fps)
    if "fps" not in entry:
        raise AnnotationError(f"{path}: video {vid!r} has no 'fps' and no default_fps was given")
    return _positive(path, vid, "fps", entry["fps"])


def _parse_segments(path: Path, vid: str, entry: dict[str, Any], label_key: str) -> list[_RawSegment]:
    anns = entry.get("annotations", [])
    if not isinstance(anns, list):
        raise AnnotationError(f"{path}: video {vid!r}: 'annotations' must be a list")
    out = []
    for i, ann in enumerate(anns):
        where = f"annotation {i}"
        if not isinstance(ann, dict):
            raise AnnotationError(f"{path}: video {vid!r}: {where} must be an object")
        for key in ("segment", "label") + (("label_id",) if label_key == "label_id" else ()):
            if key not in ann:
                raise AnnotationError(f"{path}: video {vid!r}: {where} has no {key!r} key")
        seg = ann["segment"]
        if not isinstance(seg, (list, tuple)) or len(seg) != 2:
            raise AnnotationError(
                f"{path}: video {vid!r}: {where} 'segment' must be [start, end], got {seg!r}"
            )
        start = _number(path, vid, f"{where} segment start", seg[0])
        end = _number(path, vid, f"{where} segment end", seg[1])
        if start < 0:
            raise AnnotationError(f"{path}: video {vid!r}: {where} starts before 0 s ({start})")
        if start >= end:
            raise AnnotationError(f"{path}: video {vid!r}: {where} has start >= end ({start} >= {end})")
        name = ann["label"]
        if not isinstance(name, str):
            raise AnnotationError(f"{path}: video {vid!r}: {where} 'label' must be a string, got {name!r}")
        label_id = None
        if label_key == "label_id":
            label_id = ann["label_id"]
            if isinstance(label_id, bool) or not isinstance(label_id, int) or label_id < 0:
                raise AnnotationError(
                    f"{path}: video {vid!r}: {where} 'label_id' must be an int >= 0, got {label_id!r}"
                )
        out.append(_RawSegment(start, end, name, label_id))
    return out


def _build_label_dict(path: Path, raw: dict[str, list[_RawSegment]], label_key: str) -> dict[str, int]:
    if label_key == "label":
        return {name: i for i, name in enumerate(sorted({s.name for segs in raw.values() for s in segs}))}
    if label_key != "label_id":
        raise AnnotationError(f"label_key must be 'label_id' or 'label', got {label_key!r}")
    label_dict: dict[str, int] = {}
    id_to_name: dict[int, str] = {}
    for vid, segs in raw.items():
        for i, s in enumerate(segs):
            assert s.label_id is not None
            known_id = label_dict.setdefault(s.name, s.label_id)
            known_name = id_to_name.setdefault(s.label_id, s.name)
            if known_id != s.label_id or known_name != s.name:
                raise AnnotationError(
                    f"{path}: video {vid!r}: annotation {i} has label {s.name!r} with label_id {s.label_id}, "
                    f"inconsistent with earlier annotations ({s.name!r} -> {known_id}, "
                    f"{s.label_id} -> {known_name!r})"
                )
    return dict(sorted(label_dict.items(), key=lambda kv: kv[1]))


def _check_splits(
    path: Path, database: dict[str, dict[str, Any]], splits: Sequence[str] | None
) -> set[str] | None:
    if splits is None:
        return None
    if isinstance(splits, str):
        splits = [splits]
    wanted = {s.lower() for s in splits}
    existing = sorted({entry["subset"].lower() for entry in database.values()})
    unknown = sorted(wanted - set(existing))
    if unknown:
        raise AnnotationError(f"{path}: unknown split(s) {unknown}; subsets in the file: {existing}")
    return wanted
