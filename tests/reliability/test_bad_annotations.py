"""Bad annotation files through ``tadformer train`` / ``eval``: one clear line naming file, video and key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rel_helpers import (
    assert_error,
    copy_dataset,
    eval_video_ids,
    one_thread,  # noqa: F401  (autouse)
    run_cli,
    train_args,
    train_video_ids,
)

Mutator = Callable[[dict[str, Any], str], Any]


def _ann(data: dict[str, Any], vid: str, i: int = 0) -> dict[str, Any]:
    return data["database"][vid]["annotations"][i]


# whole-file replacements -> expected fragments
WHOLE_FILE: dict[str, tuple[Any, str]] = {
    "top_level_list": ([1, 2], "expected a top-level object with a 'database' key"),
    "no_database": ({"version": 1}, "expected a top-level object with a 'database' key"),
    "database_not_object": ({"database": [1, 2]}, "'database' must map video ids"),
}

# in-place mutation of the parsed json (of video ``v``) -> expected fragments
CASES: dict[str, tuple[Mutator, tuple[str, ...]]] = {
    "video_not_object": (lambda d, v: d["database"].__setitem__(v, 3), ("must be an object",)),
    "missing_subset": (lambda d, v: d["database"][v].pop("subset"), ("has no string 'subset'",)),
    "annotations_not_list": (lambda d, v: d["database"][v].__setitem__("annotations", {}),
                             ("'annotations' must be a list",)),
    "missing_segment": (lambda d, v: _ann(d, v).pop("segment"), ("annotation 0 has no 'segment' key",)),
    "missing_label": (lambda d, v: _ann(d, v).pop("label"), ("annotation 0 has no 'label' key",)),
    "missing_label_id": (lambda d, v: _ann(d, v).pop("label_id"), ("annotation 0 has no 'label_id' key",)),
    "segment_three_values": (lambda d, v: _ann(d, v).__setitem__("segment", [1.0, 2.0, 3.0]),
                             ("'segment' must be [start, end]",)),
    "segment_strings": (lambda d, v: _ann(d, v).__setitem__("segment", ["1", "2"]),
                        ("segment start must be a finite number",)),
    "segment_nan": (lambda d, v: _ann(d, v).__setitem__("segment", [float("nan"), 2.0]),
                    ("segment start must be a finite number",)),
    "start_equals_end": (lambda d, v: _ann(d, v).__setitem__("segment", [3.0, 3.0]),
                         ("start >= end (3.0 >= 3.0)",)),
    "start_after_end": (lambda d, v: _ann(d, v).__setitem__("segment", [5.0, 2.0]), ("start >= end",)),
    "negative_start": (lambda d, v: _ann(d, v).__setitem__("segment", [-1.0, 2.0]), ("starts before 0 s",)),
    "label_id_negative": (lambda d, v: _ann(d, v).__setitem__("label_id", -1),
                          ("'label_id' must be an int >= 0, got -1",)),
    "label_id_string": (lambda d, v: _ann(d, v).__setitem__("label_id", "3"), ("'label_id' must be an int",)),
    "label_not_string": (lambda d, v: _ann(d, v).__setitem__("label", 7), ("'label' must be a string",)),
    "unknown_label_id": (lambda d, v: _ann(d, v).update(label="NotAClass", label_id=57),
                         ("annotation 0 has label 57 ('NotAClass'), outside [0, num_classes=20)",
                          "dataset.num_classes")),
    "inconsistent_label_map": (lambda d, v: _ann(d, v).update(label="SomethingElse"),
                               ("inconsistent with earlier annotations",)),
    "fps_missing": (lambda d, v: d["database"][v].pop("fps"), ("has no 'fps' and no default_fps",)),
    "fps_zero": (lambda d, v: d["database"][v].__setitem__("fps", 0), ("fps must be > 0, got 0",)),
    "fps_string": (lambda d, v: d["database"][v].__setitem__("fps", "30"), ("fps must be a finite number",)),
    "duration_zero": (lambda d, v: d["database"][v].__setitem__("duration", 0),
                      ("duration must be > 0, got 0",)),
    "duration_negative": (lambda d, v: d["database"][v].__setitem__("duration", -5.0),
                          ("duration must be > 0",)),
}


@pytest.fixture
def dataset_copy(tiny_synth, tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    return copy_dataset(tiny_synth, tmp_path / "data")


def _train(tiny_synth, tmp_path: Path, ann: Path, capsys, *extra: str) -> tuple[int, str]:
    args = train_args(tiny_synth, tmp_path / "run", f"dataset.json_file={ann}", *extra, extra=["--max-steps", "1"])
    return run_cli(args, capsys)


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_annotation_is_named(case: str, dataset_copy, tiny_synth, tmp_path: Path, capsys) -> None:
    ann, _, data = dataset_copy
    vid = train_video_ids(data)[1]
    mutate, fragments = CASES[case]
    mutate(data, vid)
    ann.write_text(json.dumps(data))
    code, err = _train(tiny_synth, tmp_path, ann, capsys)
    named = (str(ann),) if case != "unknown_label_id" else ()  # the dataset check names the video only
    assert_error(code, err, 2, *named, repr(vid), *fragments)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained


@pytest.mark.parametrize("case", sorted(WHOLE_FILE))
def test_wrong_file_structure(case: str, dataset_copy, tiny_synth, tmp_path: Path, capsys) -> None:
    ann, _, _ = dataset_copy
    content, fragment = WHOLE_FILE[case]
    ann.write_text(json.dumps(content))
    assert_error(*_train(tiny_synth, tmp_path, ann, capsys), 2, str(ann), fragment)


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (lambda text: text[: len(text) // 2], ("malformed or truncated json at line 1",)),
        (lambda text: "", ("malformed or truncated json",)),
        (lambda text: text.replace("{", "[", 1), ("malformed or truncated json",)),
    ],
    ids=["truncated", "empty", "broken_syntax"],
)
def test_unparsable_json(content, fragments, dataset_copy, tiny_synth, tmp_path: Path, capsys) -> None:
    ann, _, _ = dataset_copy
    ann.write_text(content(ann.read_text()))
    code, err = _train(tiny_synth, tmp_path, ann, capsys)
    assert_error(code, err, 2, str(ann), *fragments)


def test_not_utf8_missing_and_folder(dataset_copy, tiny_synth, tmp_path: Path, capsys) -> None:
    ann, _, _ = dataset_copy
    ann.write_bytes(b"\xff\xfe\x00\x01binary")
    assert_error(*_train(tiny_synth, tmp_path, ann, capsys), 2, str(ann), "not a UTF-8 text json file")
    missing = tmp_path / "nope.json"
    assert_error(*_train(tiny_synth, tmp_path, missing, capsys), 2, "annotation file not found", str(missing))
    assert_error(*_train(tiny_synth, tmp_path, tmp_path, capsys), 2, "is a folder", str(tmp_path))


def test_unknown_split_lists_subsets(tiny_synth, tmp_path: Path, capsys) -> None:
    code, err = _train(tiny_synth, tmp_path, tiny_synth.json_file, capsys, "train_split=[trainnig]")
    assert_error(code, err, 2, "unknown split(s) ['trainnig']", "['test', 'validation']")


def test_eval_with_unknown_split_is_an_error_not_nan(dataset_copy, tmp_path: Path, capsys) -> None:
    ann, _, data = dataset_copy
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"version": "VERSION 1.3", "results": {}, "external_data": {}}))
    code, err = run_cli(["eval", "--predictions", str(preds), "--annotations", str(ann), "--split", "tset"], capsys)
    assert_error(code, err, 2, str(ann), "no video of split 'tset'", "['test', 'validation']")
    code, err = run_cli(["eval", "--predictions", str(preds), "--annotations", str(preds)], capsys)
    assert_error(code, err, 2, str(preds), "'database'")


def test_segments_past_the_duration_are_kept(dataset_copy, tiny_synth, tmp_path: Path, capsys) -> None:
    """As in the official code (real THUMOS14 has 30 segments starting after the video's duration),
    segments past the duration and videos without a duration are accepted, not errors."""
    ann, _, data = dataset_copy
    for vid in train_video_ids(data):
        _ann(data, vid)["segment"] = [data["database"][vid]["duration"] + 5.0, data["database"][vid]["duration"] + 9.0]
    data["database"][eval_video_ids(data)[0]].pop("duration")
    ann.write_text(json.dumps(data))
    code, err = _train(tiny_synth, tmp_path, ann, capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "checkpoints" / "last.pth.tar").is_file()
