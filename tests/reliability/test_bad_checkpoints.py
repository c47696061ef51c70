"""Bad checkpoints through ``eval``, ``infer`` and ``train --resume``: a clear line, never unpickled code."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from rel_helpers import (
    assert_error,
    one_thread,  # noqa: F401  (autouse)
    run_cli,
    train_args,
)

from tadformer.config import config_to_dict
from tadformer.engine.checkpoint import load_checkpoint, save_checkpoint
from tadformer.engine.ema import ModelEma
from tadformer.model import build_model


class Payload:
    """A class whose unpickling would run code: weights_only loading must refuse it."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned > /dev/null",))


@pytest.fixture(scope="module")
def good_ckpt(tiny_cfg, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    path = tmp_path_factory.mktemp("good") / "model.pth.tar"
    return save_checkpoint(path, model=model, ema=ModelEma(model), optimizer=None, scheduler=None, epoch=1,
                           config_dict=config_to_dict(tiny_cfg), class_names=[f"c{i}" for i in range(20)])


def _flip_bytes(data: bytes) -> bytes:
    """Corrupt the zip's central directory region (the tail) so the archive cannot be read."""
    tail = len(data) - 120
    return data[:tail] + bytes(b ^ 0xA5 for b in data[tail:])


def _other_architecture(tiny_cfg) -> Callable[[Path], None]:
    wide = replace(tiny_cfg, model=replace(tiny_cfg.model, embd_dim=32, fpn_dim=32, head_dim=32))

    def write(path: Path) -> None:
        torch.manual_seed(0)
        save_checkpoint(path, model=build_model(wide), ema=None, optimizer=None, scheduler=None, epoch=3)

    return write


# name -> (writer(path, good_bytes, tiny_cfg), expected fragments)
CASES: dict[str, tuple[Callable[..., None], tuple[str, ...]]] = {
    "truncated": (lambda p, g, c: p.write_bytes(g[: len(g) // 2]), ("truncated or corrupted", "damaged")),
    "empty": (lambda p, g, c: p.write_bytes(b""), ("the file is empty",)),
    "random_bytes": (lambda p, g, c: p.write_bytes(np.random.default_rng(0).bytes(4096)),
                     ("not a valid torch checkpoint", "damaged")),
    "bit_flips": (lambda p, g, c: p.write_bytes(_flip_bytes(g)), ("corrupted", "damaged")),
    "json": (lambda p, g, c: p.write_text('{"state_dict": {}}'), ("looks like a JSON/text file",)),
    "tensor": (lambda p, g, c: torch.save(torch.zeros(3), p), ("is not a checkpoint: it holds a Tensor",)),
    "no_state_dict": (lambda p, g, c: torch.save({"epoch": 3}, p), ("no 'state_dict' entry", "['epoch']")),
    "code_payload": (lambda p, g, c: torch.save({"state_dict": Payload()}, p),
                     ("weights_only=True loading refuses", "GLOBAL posix.system")),
    "python_pickle": (lambda p, g, c: p.write_bytes(pickle.dumps({"state_dict": {}})),
                      ("not a valid torch checkpoint", "damaged")),
}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["eval", "infer"])
def test_unreadable_checkpoint(case: str, command: str, good_ckpt: Path, tiny_cfg, tiny_synth, tmp_path: Path,
                               capsys) -> None:
    bad = tmp_path / "bad.pth.tar"
    writer, fragments = CASES[case]
    writer(bad, good_ckpt.read_bytes(), tiny_cfg)
    if command == "eval":
        args = ["eval", "--ckpt", str(bad), "--out", str(tmp_path / "eval"), "--device", "cpu", "--no-progress"]
    else:
        feat = tiny_synth.feat_folder / "video_test_0000001.npy"
        args = ["infer", "--ckpt", str(bad), "--feat", str(feat), "--device", "cpu"]
    code, err = run_cli(args, capsys)
    assert_error(code, err, 2, str(bad), *fragments)
    assert not (tmp_path / "eval").exists()


def test_checkpoint_of_another_architecture(good_ckpt: Path, tiny_cfg, tiny_synth, tmp_path: Path,
                                            capsys) -> None:
    other = tmp_path / "wide.pth.tar"
    _other_architecture(tiny_cfg)(other)  # no config inside: the YAML is needed, and does not fit
    code, err = run_cli(["eval", str(tiny_synth.config_file), "--ckpt", str(other), "--device", "cpu",
                         "--no-progress", "--out", str(tmp_path / "eval"), "--set", "model.embd_dim=16",
                         "--set", "model.fpn_dim=16", "--set", "model.head_dim=16"], capsys)
    assert_error(code, err, 2, "state_dict from wide.pth.tar does not fit the model", "shape mismatches",
                 "checkpoint [32, 16, 3] vs model [16, 16, 3]", "pass the YAML config the checkpoint was trained with")
    # our checkpoint (config inside) forced onto another YAML: the hint says to drop the YAML
    code, err = run_cli(["eval", str(tiny_synth.config_file), "--ckpt", str(good_ckpt), "--device", "cpu",
                         "--no-progress", "--out", str(tmp_path / "eval")], capsys)
    assert_error(code, err, 2, "does not fit the model", "another architecture: omit the config")


def test_official_checkpoint_without_config_needs_the_yaml(good_ckpt: Path, tmp_path: Path, capsys) -> None:
    ckpt = torch.load(good_ckpt, weights_only=True)
    official = tmp_path / "epoch_034.pth.tar"
    torch.save({"epoch": 34, "state_dict": {f"module.{k}": v for k, v in ckpt["state_dict"].items()}}, official)
    code, err = run_cli(["eval", "--ckpt", str(official), "--device", "cpu"], capsys)
    assert_error(code, err, 2, str(official), "holds no config", "--config")


def test_config_stored_in_checkpoint_is_invalid(good_ckpt: Path, tmp_path: Path, capsys) -> None:
    ckpt = torch.load(good_ckpt, weights_only=True)
    ckpt["config"]["opt"]["learnig_rate"] = 1.0
    bad = tmp_path / "bad_config.pth.tar"
    torch.save(ckpt, bad)
    code, err = run_cli(["eval", "--ckpt", str(bad), "--device", "cpu"], capsys)
    assert_error(code, err, 2, str(bad), "config stored in the checkpoint is invalid", "'opt.learning_rate'")


def test_checkpoint_path_problems(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.pth.tar"
    assert_error(*run_cli(["eval", "--ckpt", str(missing), "--device", "cpu"], capsys), 1, str(missing),
                 "not found")
    empty_run = tmp_path / "run"
    (empty_run / "checkpoints").mkdir(parents=True)
    assert_error(*run_cli(["eval", "--ckpt", str(empty_run), "--device", "cpu"], capsys), 1,
                 "no checkpoint (*.pth.tar) in", str(empty_run / "checkpoints"))
    assert_error(*run_cli(["eval", "--ckpt", str(empty_run), "--epoch", "7", "--device", "cpu"], capsys), 1,
                 "epoch_007.pth.tar not found")


@pytest.mark.parametrize("case", ["truncated", "random_bytes", "code_payload", "weights_only", "other_arch"])
def test_resume_from_a_bad_checkpoint(case: str, good_ckpt: Path, tiny_cfg, tiny_synth, tmp_path: Path,
                                      capsys) -> None:
    last = tmp_path / "run" / "checkpoints" / "last.pth.tar"
    last.parent.mkdir(parents=True)
    expected: tuple[str, ...]
    if case == "weights_only":  # e.g. an official or inference-only checkpoint
        ckpt = torch.load(good_ckpt, weights_only=True)
        torch.save({"epoch": 3, "state_dict": ckpt["state_dict"]}, last)
        expected = (str(last), "not a resumable tadformer checkpoint")
    elif case == "other_arch":
        _other_architecture(tiny_cfg)(last)
        expected = ("does not fit the model", "shape mismatches")
    else:
        writer, fragments = CASES[case]
        writer(last, good_ckpt.read_bytes(), tiny_cfg)
        expected = (str(last), *fragments)
    before = last.read_bytes()
    code, err = run_cli(train_args(tiny_synth, tmp_path / "run", extra=["--resume"]), capsys)
    assert_error(code, err, 2, *expected)
    assert last.read_bytes() == before  # a failed resume never overwrites the checkpoint


def test_resume_without_checkpoint_starts_from_scratch(tiny_synth, tmp_path: Path, capsys) -> None:
    code, err = run_cli(train_args(tiny_synth, tmp_path / "run", extra=["--resume", "--max-steps", "1"]), capsys)
    assert code == 0, err
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pth.tar")["extra"]["global_step"] == 1

