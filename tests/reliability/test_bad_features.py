"""Bad feature files through ``train``, ``eval`` and ``infer``: one line naming the video, file and problem."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rel_helpers import (
    assert_error,
    copy_dataset,
    eval_video_ids,
    one_thread,  # noqa: F401  (autouse)
    run_cli,
    train_args,
    train_video_ids,
)

from tadformer.config import config_to_dict
from tadformer.engine.checkpoint import save_checkpoint
from tadformer.engine.train import epoch_batches
from tadformer.model import build_model

C = 16  # input_dim of the tiny dataset


def _save(array: np.ndarray, **kwargs: Any) -> Callable[[Path], None]:
    return lambda p: np.save(p, array, **kwargs)


def _write_text(p: Path, text: str) -> None:
    p.write_text(text)


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:200])


# writer of a bad file -> expected fragments of the message
BAD_FILES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "wrong_dim": (_save(np.zeros((100, 7), np.float32)), ("has shape (100, 7)", "C=7", "input_dim=16")),
    "transposed": (_save(np.zeros((C, 100), np.float32)), ("it looks transposed",)),
    "one_dim": (_save(np.zeros(100, np.float32)), ("expected a 2-D [T, C] array",)),
    "three_dim": (_save(np.zeros((2, 100, C), np.float32)), ("expected a 2-D [T, C] array",)),
    "empty": (_save(np.zeros((0, C), np.float32)), ("has zero length",)),
    "nan": (_save(np.where(np.arange(100)[:, None] == 37, np.nan, np.ones((100, C), np.float32))),
            ("contains NaN/Inf values (first bad row: 37)",)),
    "inf": (_save(np.full((100, C), np.inf, np.float32)), ("contains NaN/Inf values",)),
    "int_dtype": (_save(np.zeros((100, C), np.int64)), ("has dtype int64", "float16/float32/float64")),
    "bool_dtype": (_save(np.zeros((100, C), bool)), ("has dtype bool",)),
    "pickled_objects": (_save(np.array([{"a": 1}], dtype=object), allow_pickle=True),
                        ("holds Python objects (a pickled array)",)),
    "truncated": (_truncate, ("is truncated",)),
    "zero_bytes": (lambda p: _write_text(p, ""), ("is not a .npy file",)),
    "text": (lambda p: _write_text(p, "1,2,3\n"), ("is not a .npy file",)),
    "npz_archive": (lambda p: np.savez(open(p, "wb"), np.zeros((5, C))), ("is a zip/.npz archive",)),
}

TRAIN_CASES = ("wrong_dim", "one_dim", "empty", "nan", "int_dtype", "pickled_objects", "truncated", "text")
EVAL_CASES = ("wrong_dim", "nan", "pickled_objects", "truncated")


@pytest.fixture(scope="module")
def untrained_ckpt(tiny_cfg, tmp_path_factory) -> Path:
    """A checkpoint of a freshly initialised tiny model, with its config (enough for eval/infer)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pth.tar"
    return save_checkpoint(path, model=build_model(tiny_cfg), ema=None, optimizer=None, scheduler=None, epoch=0,
                           config_dict=config_to_dict(tiny_cfg), class_names=[f"c{i}" for i in range(20)])


def _first_loaded_video(tiny_cfg, data: dict[str, Any]) -> str:
    """The training video in the first batch of epoch 0 (so a bad file fails the very first step)."""
    vids = train_video_ids(data)
    first = epoch_batches(len(vids), tiny_cfg.loader.batch_size, tiny_cfg.init_rand_seed, 0)[0][0]
    return vids[first]


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_train_names_the_bad_feature_file(case: str, tiny_synth, tiny_cfg, tmp_path: Path, capsys) -> None:
    _, feats, data = copy_dataset(tiny_synth, tmp_path / "data")
    vid = _first_loaded_video(tiny_cfg, data)
    writer, fragments = BAD_FILES[case]
    writer(feats / f"{vid}.npy")
    code, err = run_cli(train_args(tiny_synth, tmp_path / "run", f"dataset.feat_folder={feats}",
                                   extra=["--max-steps", "1"]), capsys)
    assert_error(code, err, 2, f"video {vid!r}", str(feats / f"{vid}.npy"), *fragments)
    assert not (tmp_path / "run" / "checkpoints" / "last.pth.tar").exists()


def test_error_in_a_dataloader_worker_is_one_line(tiny_synth, tiny_cfg, tmp_path: Path, capsys) -> None:
    """With loader.num_workers > 0 torch re-raises worker errors with the worker's traceback inside
    the message; the CLI prints only the original message."""
    _, feats, data = copy_dataset(tiny_synth, tmp_path / "data")
    vid = _first_loaded_video(tiny_cfg, data)
    np.save(feats / f"{vid}.npy", np.zeros((100, 7), np.float32))
    code, err = run_cli(train_args(tiny_synth, tmp_path / "run", f"dataset.feat_folder={feats}",
                                   "loader.num_workers=1", extra=["--max-steps", "1"]), capsys)
    assert_error(code, err, 2, f"video {vid!r}", "C=7", "input_dim=16", "DataLoader worker")
    assert "Original Traceback" not in err and 'File "' not in err


@pytest.mark.parametrize("case", EVAL_CASES)
def test_eval_names_the_bad_feature_file(case: str, tiny_synth, untrained_ckpt: Path, tmp_path: Path,
                                         capsys) -> None:
    _, feats, data = copy_dataset(tiny_synth, tmp_path / "data")
    vid = eval_video_ids(data)[1]
    writer, fragments = BAD_FILES[case]
    writer(feats / f"{vid}.npy")
    code, err = run_cli(["eval", "--ckpt", str(untrained_ckpt), "--out", str(tmp_path / "eval"), "--no-progress",
                         "--device", "cpu", "--set", f"dataset.feat_folder={feats}"], capsys)
    assert_error(code, err, 2, f"video {vid!r}", str(feats / f"{vid}.npy"), *fragments)
    assert not (tmp_path / "eval" / "metrics.json").exists()


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_infer_names_the_bad_feature_file(case: str, untrained_ckpt: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / f"{case}.npy"
    np.save(path, np.ones((100, C), np.float32))
    writer, fragments = BAD_FILES[case]
    writer(path)
    code, err = run_cli(["infer", "--ckpt", str(untrained_ckpt), "--feat", str(path), "--device", "cpu",
                         "--json", str(tmp_path / "out.json")], capsys)
    assert_error(code, err, 2, f"video {case!r}", str(path), *fragments)
    assert not (tmp_path / "out.json").exists()


def test_infer_missing_and_unreadable(untrained_ckpt: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    missing = tmp_path / "missing.npy"
    code, err = run_cli(["infer", "--ckpt", str(untrained_ckpt), "--feat", str(missing), "--device", "cpu"], capsys)
    assert_error(code, err, 2, str(missing), "not found", "feat_folder")
    locked = tmp_path / "locked.npy"
    np.save(locked, np.ones((100, C), np.float32))
    real_open = pathlib.Path.open

    def deny(self: Path, *args: Any, **kwargs: Any) -> Any:  # chmod 000 does not stop root
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", deny)
    code, err = run_cli(["infer", "--ckpt", str(untrained_ckpt), "--feat", str(locked), "--device", "cpu"], capsys)
    assert_error(code, err, 2, str(locked), "Permission denied")


def test_missing_training_features_are_skipped_then_reported(tiny_synth, tmp_path: Path, capsys) -> None:
    """Official behaviour: videos without a feature file are skipped; with too few left it is an error."""
    _, feats, data = copy_dataset(tiny_synth, tmp_path / "data")
    for vid in train_video_ids(data)[:5]:
        (feats / f"{vid}.npy").unlink()
    code, err = run_cli(train_args(tiny_synth, tmp_path / "run", f"dataset.feat_folder={feats}"), capsys)
    assert_error(code, err, 2, "has 1 videos with features", str(feats), "5 without a feature file",
                 "loader.batch_size=2")


def test_unannotated_training_video_longer_than_max_seq_len(tiny_synth, tiny_cfg, tmp_path: Path,
                                                           capsys) -> None:
    """Annotated videos are cropped to max_seq_len; one without annotations cannot be, so it is named."""
    ann, feats, data = copy_dataset(tiny_synth, tmp_path / "data")
    vid = _first_loaded_video(tiny_cfg, data)
    data["database"][vid]["annotations"] = []
    ann.write_text(json.dumps(data))
    np.save(feats / f"{vid}.npy", np.ones((700, C), np.float32))  # > max_seq_len = 576
    code, err = run_cli(train_args(tiny_synth, tmp_path / "run", f"dataset.feat_folder={feats}",
                                   f"dataset.json_file={ann}", extra=["--max-steps", "1"]), capsys)
    assert_error(code, err, 2, f"video {vid!r}", "T=700 > max_seq_len=576", "raise dataset.max_seq_len")


def test_video_longer_than_the_official_point_buffer_is_evaluated(untrained_ckpt: Path, tiny_cfg,
                                                                  tmp_path: Path, capsys) -> None:
    """No fixed maximum at inference: the official code asserts beyond max_seq_len * max_buffer_len_factor
    (3456 steps here); points are computed for any padded length instead."""
    limit = tiny_cfg.dataset.max_seq_len * tiny_cfg.model.max_buffer_len_factor
    path = tmp_path / "long.npy"
    np.save(path, np.random.default_rng(0).random((int(limit) + 600, C), dtype=np.float32))
    code, err = run_cli(["infer", "--ckpt", str(untrained_ckpt), "--feat", str(path), "--device", "cpu",
                         "--json", str(tmp_path / "long.json")], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "long.json").read_text())["results"]["long"]
    assert results and all(0 <= r["segment"][0] <= r["segment"][1] for r in results)

