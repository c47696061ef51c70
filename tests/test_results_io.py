"""ActivityNet result-format IO: exact float32 round trip, atomic writes, precise errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tadformer.results_io import (
    ResultsFormatError,
    flatten_results,
    read_results_json,
    write_results_csv,
    write_results_json,
)

CLASS_NAMES = ["BaseballPitch", "BasketballDunk", "Billiards"]


@dataclass
class Dets:
    video_id: str
    segments_sec: Any
    scores: Any
    labels: Any


def _dets() -> list[Dets]:
    rng = np.random.default_rng(0)
    seg = np.sort(rng.uniform(0, 100, (4, 2)), axis=1).astype(np.float32)
    return [
        Dets("video_b", seg, rng.random(4).astype(np.float32), np.array([2, 0, 1, 0])),
        Dets(
            "video_a",
            torch.from_numpy(seg[:1] + 1),
            torch.tensor([0.1], dtype=torch.float32),
            torch.tensor([1]),
        ),
        Dets("video_empty", np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)),
    ]


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "out" / "predictions.json"
    dets = _dets()
    write_results_json(path, dets, CLASS_NAMES)
    data = read_results_json(path)
    assert data["version"] == "VERSION 1.3" and data["external_data"] == {}
    assert list(data["results"]) == ["video_b", "video_a", "video_empty"]
    first = data["results"]["video_b"][0]
    assert first["label"] == "Billiards" and first["label_id"] == 2
    flat = flatten_results(data)
    seg = np.concatenate([np.asarray(d.segments_sec) for d in dets])
    # float64 values read back equal the float32 sources exactly (no rounding on either side)
    np.testing.assert_array_equal(flat.t_start_sec, seg[:, 0].astype(np.float64))
    np.testing.assert_array_equal(flat.t_end_sec, seg[:, 1].astype(np.float64))
    np.testing.assert_array_equal(
        flat.scores, np.concatenate([np.asarray(d.scores) for d in dets]).astype(np.float64)
    )
    np.testing.assert_array_equal(flat.labels, [2, 0, 1, 0, 1])
    np.testing.assert_array_equal(flat.video_index, [0, 0, 0, 0, 1])
    assert [p.name for p in path.parent.iterdir()] == ["predictions.json"]  # no temp file left


def test_overwrite_replaces_file(tmp_path: Path) -> None:
    path = tmp_path / "predictions.json"
    path.write_text("old")
    write_results_json(path, _dets()[:1])
    assert list(json.loads(path.read_text())["results"]) == ["video_b"]
    assert len(list(tmp_path.iterdir())) == 1


def test_csv(tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    write_results_csv(path, _dets(), CLASS_NAMES)
    lines = path.read_text().splitlines()
    assert lines[0] == "video_id,label_id,label,score,t_start_sec,t_end_sec"
    assert len(lines) == 1 + 5
    video, label_id, label, score, *_ = lines[-1].split(",")
    assert (video, label_id, label) == ("video_a", "1", "BasketballDunk")
    assert np.float32(float(score)) == np.float32(0.1)


def test_writer_rejects_inconsistent_detections(tmp_path: Path) -> None:
    bad = Dets("v", np.zeros((2, 2)), np.zeros(3), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="'v'.*same length"):
        write_results_json(tmp_path / "p.json", [bad])
    with pytest.raises(ValueError, match="twice"):
        write_results_json(tmp_path / "p.json", [_dets()[0], _dets()[0]])
    with pytest.raises(ValueError, match="label id 2"):
        write_results_json(tmp_path / "p.json", _dets()[:1], ["a", "b"])
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"label_id": 0, "segment": [0, 1]}, r"results\['vid'\]\[1\] is missing key 'score'"),
        ({"label_id": 0, "score": 0.5, "segment": [0, 1, 2]}, r"results\['vid'\]\[1\] has a bad segment"),
        ({"label_id": 0, "score": 0.5, "segment": "ab"}, r"results\['vid'\]\[1\] has a bad segment"),
        (
            {"label_id": 0.5, "score": 0.5, "segment": [0, 1]},
            r"results\['vid'\]\[1\] has a non-integer label_id",
        ),
        ({"label_id": 0, "score": "x", "segment": [0, 1]}, r"results\['vid'\]\[1\] has a non-numeric score"),
    ],
)
def test_read_errors_name_file_video_index(tmp_path: Path, item: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.json"
    good = {"label_id": 0, "score": 0.5, "segment": [0.0, 1.0]}
    path.write_text(json.dumps({"results": {"ok": [good], "vid": [good, item]}}))
    with pytest.raises(ResultsFormatError, match=message) as info:
        read_results_json(path)
    assert str(path) in str(info.value)


def test_read_errors_whole_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_results_json(tmp_path / "missing.json")
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ResultsFormatError, match="not valid JSON"):
        read_results_json(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"database": {}}))
    with pytest.raises(ResultsFormatError, match="'results'"):
        read_results_json(tmp_path / "b.json")


def test_flat_dict_length_mismatch() -> None:
    flat = {
        "video-id": ["a", "b"],
        "t-start": [0.0],
        "t-end": [1.0, 2.0],
        "label": [0, 1],
        "score": [0.1, 0.2],
    }
    with pytest.raises(ResultsFormatError, match="'t-start' has 1 entries"):
        flatten_results(flat)


def test_foreign_float64_values_are_not_rounded_to_float32(tmp_path: Path) -> None:
    """A result file from another tool keeps its float64 times and scores."""
    path = tmp_path / "foreign.json"
    seg = [1.40000007, 2.0000000001]  # neither is a float32 value
    path.write_text(json.dumps({"results": {"v": [{"label_id": 0, "score": 0.123456789012, "segment": seg}]}}))
    flat = flatten_results(read_results_json(path))
    assert flat.t_start_sec.dtype == np.float64
    assert flat.t_start_sec.tolist() == [seg[0]] and flat.t_end_sec.tolist() == [seg[1]]
    assert flat.scores.tolist() == [0.123456789012]
