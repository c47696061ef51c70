"""Annotation reading: real THUMOS14 facts (STATS.md / SPEC §2.1-2.2) and validation errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tadformer.data.annotations import (
    DEFAULT_DURATION_SEC,
    AnnotationError,
    read_annotations,
    thumos14_class_names,
)

# ----------------------------------------------------------------------------- real THUMOS14 file


def test_thumos_split_counts(thumos_json: Path) -> None:
    val = read_annotations(thumos_json, ["validation"])
    test = read_annotations(thumos_json, ["test"])
    assert len(val) == 200 and sum(v.num_segments for v in val.videos) == 3007
    assert len(test) == 212 and sum(v.num_segments for v in test.videos) == 3358
    assert "video_test_0001292" not in test.video_ids
    assert "video_test_0000270" in test.video_ids and "video_test_0001496" in test.video_ids
    assert all(v.subset == "Test" for v in test.videos)


def test_thumos_classes_and_order(thumos_json: Path) -> None:
    ann = read_annotations(thumos_json, ["Test", "VALIDATION"])  # subsets are case-insensitive
    assert ann.class_names == thumos14_class_names()
    assert (
        ann.class_names[4] == "CliffDiving" and ann.class_names[7] == "Diving" and len(ann.class_names) == 20
    )
    assert ann.label_dict["VolleyballSpiking"] == 19
    ids = ann.video_ids
    assert ids == sorted(ids)  # json key order: all video_test_* first
    assert ids[0].startswith("video_test_") and ids[-1].startswith("video_validation_")


def test_thumos_label_dict_uses_all_videos(thumos_json: Path) -> None:
    # label map from every video, whatever the split (official)
    assert (
        read_annotations(thumos_json, ["validation"]).label_dict == read_annotations(thumos_json).label_dict
    )


def test_thumos_cliffdiving_duplicated_as_diving(thumos_json: Path) -> None:
    videos = read_annotations(thumos_json).videos
    cliff = diving_twins = 0
    for v in videos:
        diving = {tuple(s) for s, lab in zip(v.segments_sec.tolist(), v.labels.tolist()) if lab == 7}
        for seg, lab in zip(v.segments_sec.tolist(), v.labels.tolist()):
            if lab == 4:
                cliff += 1
                diving_twins += tuple(seg) in diving
    assert cliff == 360 and diving_twins == 360


def test_thumos_segments_past_duration_kept_and_fps_mix(thumos_json: Path) -> None:
    videos = read_annotations(thumos_json).videos
    past = [(v.video_id, e) for v in videos for e in v.segments_sec[:, 1] if e > v.duration_sec]
    assert len(past) == 30
    assert Counter(vid for vid, _ in past)["video_test_0000270"] == 22
    assert Counter(v.fps for v in videos) == {30.0: 381, 29.97: 18, 25.0: 11, 24.0: 2}
    v4 = next(v for v in videos if v.video_id == "video_test_0000004")
    assert v4.duration_sec == 33.83 and v4.segments_sec.dtype == np.float64 and v4.labels.dtype == np.int64
    np.testing.assert_array_equal(v4.segments_sec[0], [0.2, 1.1])
    assert v4.label_names[0] == "CricketBowling" and v4.labels.tolist() == [5, 5, 5, 5, 6, 6, 6]


def test_default_fps_overrides_json(thumos_json: Path) -> None:
    videos = read_annotations(thumos_json, ["test"], default_fps=12.5).videos
    assert {v.fps for v in videos} == {12.5}


def test_unknown_split_lists_existing(thumos_json: Path) -> None:
    with pytest.raises(AnnotationError, match=r"unknown split.*'training'.*\['test', 'validation'\]"):
        read_annotations(thumos_json, ["training"])


# ----------------------------------------------------------------------------- synthetic files


def _ann(label: str, label_id: int, seg: list[Any]) -> dict[str, Any]:
    return {"label": label, "label_id": label_id, "segment": seg}


def _write(tmp_path: Path, database: Any, name: str = "ann.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"version": "x", "database": database}))
    return path


def _db(**overrides: Any) -> dict[str, Any]:
    video = {"subset": "Training", "duration": 10.0, "fps": 25.0, "annotations": [_ann("a", 0, [1.0, 2.0])]}
    video.update(overrides)
    return {"v1": video, "v2": {"subset": "Testing", "duration": 5.0, "fps": 30.0, "annotations": []}}


def test_synthetic_roundtrip_and_empty_video(tmp_path: Path) -> None:
    ann = read_annotations(_write(tmp_path, _db()), None)
    v1, v2 = ann.videos
    np.testing.assert_array_equal(v1.segments_sec, [[1.0, 2.0]])
    assert v2.segments_sec.shape == (0, 2) and v2.labels.shape == (0,) and v2.label_names == ()
    assert ann.class_names == ("a",)


def test_missing_duration_defaults_and_missing_annotations(tmp_path: Path) -> None:
    db = _db()
    del db["v1"]["duration"]
    del db["v2"]["annotations"]
    v1, v2 = read_annotations(_write(tmp_path, db)).videos
    assert v1.duration_sec == DEFAULT_DURATION_SEC == 1e8
    assert v2.num_segments == 0


def test_non_contiguous_label_ids(tmp_path: Path) -> None:
    db = _db(annotations=[_ann("a", 3, [0.0, 1.0]), _ann("b", 7, [1.0, 2.0])])
    ann = read_annotations(_write(tmp_path, db))
    assert ann.class_names == ("", "", "", "a", "", "", "", "b")
    assert ann.videos[0].labels.tolist() == [3, 7]


def test_label_key_label_numbers_sorted_names(tmp_path: Path) -> None:
    db = _db(
        annotations=[{"label": "zeta", "segment": [0.0, 1.0]}, {"label": "alpha", "segment": [1.0, 2.0]}]
    )
    ann = read_annotations(_write(tmp_path, db), label_key="label")
    assert ann.label_dict == {"alpha": 0, "zeta": 1}
    assert ann.videos[0].labels.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"annotations": [_ann("a", 0, [2.0, 2.0])]}, r"'v1'.*annotation 0.*start >= end"),
        (
            {"annotations": [_ann("a", 0, [1.0, 2.0]), _ann("a", 0, [-0.5, 2.0])]},
            r"'v1'.*annotation 1.*before 0",
        ),
        ({"annotations": [{"label": "a", "segment": [0.0, 1.0]}]}, r"'v1'.*annotation 0.*'label_id'"),
        ({"annotations": [{"label": "a", "label_id": 0}]}, r"'v1'.*annotation 0.*'segment'"),
        (
            {"annotations": [_ann("a", 0, [0.0, 1.0]), _ann("a", 1, [1.0, 2.0])]},
            r"'v1'.*annotation 1.*inconsist",
        ),
        (
            {"annotations": [_ann("a", 0, [0.0, 1.0]), _ann("b", 0, [1.0, 2.0])]},
            r"'v1'.*annotation 1.*inconsist",
        ),
        ({"annotations": [_ann("a", 0, [0.0, "x"])]}, r"'v1'.*annotation 0 segment end.*finite number"),
        ({"annotations": [_ann("a", 0, [0.0])]}, r"'v1'.*annotation 0.*\[start, end\]"),
        ({"annotations": [_ann("a", -1, [0.0, 1.0])]}, r"'v1'.*label_id.*>= 0"),
        ({"fps": 0}, r"'v1'.*fps must be > 0"),
        ({"duration": None}, r"'v1'.*duration.*finite"),
        ({"subset": 3}, r"'v1'.*subset"),
    ],
)
def test_malformed_entries(tmp_path: Path, overrides: dict[str, Any], pattern: str) -> None:
    path = _write(tmp_path, _db(**overrides))
    with pytest.raises(AnnotationError, match=pattern) as info:
        read_annotations(path)
    assert str(path) in str(info.value)


def test_missing_fps_needs_default(tmp_path: Path) -> None:
    db = _db()
    del db["v2"]["fps"]
    path = _write(tmp_path, db)
    with pytest.raises(AnnotationError, match=r"'v2' has no 'fps' and no default_fps"):
        read_annotations(path)
    assert read_annotations(path, default_fps=10.0).videos[1].fps == 10.0


def test_truncated_json_reports_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"database": {\n  "v1": {"subset": "Training",\n')
    with pytest.raises(AnnotationError, match=r"bad\.json: malformed or truncated json at line 3, column 1"):
        read_annotations(path)


def test_missing_file_and_database(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="not found"):
        read_annotations(tmp_path / "nope.json")
    path = tmp_path / "nodb.json"
    path.write_text(json.dumps({"videos": {}}))
    with pytest.raises(AnnotationError, match="'database'"):
        read_annotations(path)
