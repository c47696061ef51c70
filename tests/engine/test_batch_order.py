"""Batch orders: every run records the videos and crop windows of each optimiser step in
``batch_order.json``; ``train --batch-order`` replays a file exactly; bad files name the step."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from rel_helpers import assert_error, run_cli, train_args  # noqa: E402

from tadformer.engine.batch_order import (  # noqa: E402
    BatchOrderError,
    parse_batch_order,
    resolve_batch_order,
)
from tadformer.engine.checkpoint import load_checkpoint  # noqa: E402

FINAL = "epoch_003.pth.tar"  # tiny recipe: 1 + 2 epochs x 3 steps of 2 videos


def test_parse_both_forms() -> None:
    plain = parse_batch_order([["a", "b"], ["c", "a"]])
    assert plain.steps == (("a", "b"), ("c", "a")) and plain.crop_windows is None
    full = parse_batch_order({"steps": [["a", "b"]], "crop_windows": [[[0, 10], [3, 9]]]})
    assert full.crop_windows == (((0, 10), (3, 9)),)


@pytest.mark.parametrize("data, message", [
    ({"step": []}, "expected a list of steps or an object with 'steps'"),
    ("a", "expected a JSON list"),
    ([["a", "b"], ["c", 3]], "step 1 must be a list of video ids"),
    ({"steps": [["a", "b"]], "crop_windows": [[[0, 1]]]}, "step 0: 'crop_windows' needs one window per video"),
    ({"steps": [["a"]], "crop_windows": [[[0, 1.5]]]}, "step 0, video 'a': a crop window must be [start, end]"),
])
def test_malformed_files_are_named(data: object, message: str) -> None:
    with pytest.raises(BatchOrderError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_batch_order(data, "f.json")


def test_resolve_checks_the_run() -> None:
    order = parse_batch_order([["a", "b"], ["b", "c"], ["c"]])
    assert resolve_batch_order(order, ["c", "b", "a"], 2, 2) == [[2, 1], [1, 0]]
    with pytest.raises(BatchOrderError, match="step 2 has 1 videos, expected 2"):
        resolve_batch_order(order, ["a", "b", "c"], 2, 3)
    with pytest.raises(BatchOrderError, match="has 3 steps but the run needs 4; step 3 is missing"):
        resolve_batch_order(order, ["a", "b", "c"], 2, 4)
    with pytest.raises(BatchOrderError, match=r"step 1 names video\(s\) \['c'\]"):
        resolve_batch_order(order, ["a", "b"], 2, 2)


def _weights_equal(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    for key in ("state_dict", "state_dict_ema"):
        for name, value in ca[key].items():
            torch.testing.assert_close(cb[key][name], value, atol=0, rtol=0, msg=f"{key}/{name}")


@pytest.fixture(scope="module")
def original(tiny_synth, tmp_path_factory) -> Path:
    """A run with the THUMOS crop_ratio (0.9, 1.0), so that most items are cropped."""
    run = tmp_path_factory.mktemp("order") / "original"
    from tadformer.cli import main

    assert main(train_args(tiny_synth, run)) == 0
    return run


def test_every_run_records_its_order(original: Path, tiny_cfg) -> None:
    from tadformer.engine.batches import build_train_dataset, epoch_batches

    record = json.loads((original / "batch_order.json").read_text())
    assert record["format"] == "tadformer-batch-order" and record["steps_per_epoch"] == 3
    assert len(record["steps"]) == 9 and all(len(s) == 2 for s in record["steps"])
    ids = [rec.video_id for rec in build_train_dataset(tiny_cfg)[0].records]
    seed = tiny_cfg.init_rand_seed
    expected = [[ids[i] for i in b] for e in range(3) for b in epoch_batches(len(ids), 2, seed, e)[:3]]
    assert record["steps"] == expected  # the seeded shuffle of each epoch
    windows = [w for row in record["crop_windows"] for w in row]
    assert all(0 <= s < e for s, e in windows)
    assert any(s > 0 for s, _ in windows), "crop_ratio (0.9, 1.0) should crop some items"


def test_replaying_a_run_gives_its_weights(original: Path, tiny_synth, tmp_path: Path, capsys) -> None:
    replay = tmp_path / "replay"
    code, err = run_cli(train_args(tiny_synth, replay, extra=["--batch-order", str(original / "batch_order.json")]),
                        capsys)
    assert code == 0, err
    _weights_equal(original / "checkpoints" / FINAL, replay / "checkpoints" / FINAL)
    assert json.loads((replay / "batch_order.json").read_text()) == json.loads(
        (original / "batch_order.json").read_text())


def test_replay_uses_the_files_batches_and_crops(original: Path, tiny_synth, tmp_path: Path, capsys) -> None:
    """Another seed would shuffle and crop differently: the file's order and windows win."""
    record = json.loads((original / "batch_order.json").read_text())
    reordered = dict(record, steps=record["steps"][::-1], crop_windows=record["crop_windows"][::-1])
    order_file = tmp_path / "reordered.json"
    order_file.write_text(json.dumps(reordered))
    run = tmp_path / "run"
    code, err = run_cli(train_args(tiny_synth, run, extra=["--batch-order", str(order_file), "--seed", "5"]), capsys)
    assert code == 0, err
    written = json.loads((run / "batch_order.json").read_text())
    assert written["steps"] == reordered["steps"] and written["crop_windows"] == reordered["crop_windows"]

    plain = tmp_path / "plain.json"  # ids only: the crops are drawn as usual (seeded)
    plain.write_text(json.dumps(record["steps"]))
    code, err = run_cli(train_args(tiny_synth, tmp_path / "plain", extra=["--batch-order", str(plain)]), capsys)
    assert code == 0, err
    _weights_equal(original / "checkpoints" / FINAL, tmp_path / "plain" / "checkpoints" / FINAL)


def test_resumed_run_records_the_whole_order(original: Path, tiny_synth, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert run_cli(train_args(tiny_synth, run, extra=["--max-steps", "4"]), capsys)[0] == 0
    assert len(json.loads((run / "batch_order.json").read_text())["steps"]) == 4
    assert run_cli(train_args(tiny_synth, run, extra=["--resume"]), capsys)[0] == 0
    assert json.loads((run / "batch_order.json").read_text()) == json.loads(
        (original / "batch_order.json").read_text())


@pytest.mark.parametrize("mutate, fragments", [
    (lambda s: s[:5], ("has 5 steps but the run needs 9", "step 5 is missing")),
    (lambda s: s[:3] + [s[3] + s[4]] + s[4:], ("step 3 has 4 videos, expected 2",)),
    (lambda s: s[:6] + [["no_such_video", s[6][1]]] + s[7:], ("step 6 names video(s) ['no_such_video']",)),
])
def test_bad_order_files_name_the_step(original: Path, tiny_synth, tmp_path: Path, capsys, mutate, fragments) -> None:
    steps = json.loads((original / "batch_order.json").read_text())["steps"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(mutate(steps)))
    code, err = run_cli(train_args(tiny_synth, tmp_path / "run", extra=["--batch-order", str(bad)]), capsys)
    assert_error(code, err, 2, str(bad), *fragments)
