"""A non-finite loss stops ``tadformer train`` with a diagnostic and keeps the last good checkpoint;
``--skip-nonfinite`` skips such steps instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rel_helpers import (
    assert_error,
    copy_dataset,
    one_thread,  # noqa: F401  (autouse)
    run_cli,
    train_args,
    train_video_ids,
)

import tadformer.engine.step as train_mod
from tadformer.engine.checkpoint import load_checkpoint
from tadformer.engine.train import epoch_batches


def _poison_call(monkeypatch: pytest.MonkeyPatch, bad_call: int) -> None:
    """Make the regression loss of the ``bad_call``-th loss computation NaN."""
    real = train_mod.compute_losses
    calls = {"n": 0}

    def poisoned(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == bad_call:
            out["reg_loss"] = out["reg_loss"] * float("nan")
            out["final_loss"] = out["cls_loss"] + out["reg_loss"]
        return out

    monkeypatch.setattr(train_mod, "compute_losses", poisoned)


def _all_finite(ckpt: dict[str, Any]) -> bool:
    return all(bool(torch.isfinite(v).all()) for key in ("state_dict", "state_dict_ema") for v in ckpt[key].values())


def test_nan_loss_stops_with_diagnostic_and_keeps_last_good_checkpoint(tiny_synth, tmp_path: Path, capsys,
                                                                       monkeypatch) -> None:
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth.tar"
    _poison_call(monkeypatch, 5)  # epoch 1 (0-based), its second step
    code, err = run_cli(train_args(tiny_synth, run), capsys)
    assert_error(code, err, 1, "non-finite reg_loss", "on videos ['video_validation_", "at epoch 1, step 4",
                 str(run / "checkpoints"), "--skip-nonfinite")
    good = load_checkpoint(last)
    assert good["epoch"] == 1 and good["extra"]["global_step"] == 3 and _all_finite(good)
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 4  # the bad step is not logged


def test_skip_nonfinite_skips_the_step(tiny_synth, tmp_path: Path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"
    _poison_call(monkeypatch, 5)
    code, err = run_cli(train_args(tiny_synth, run, extra=["--skip-nonfinite", "--max-steps", "6"]), capsys)
    assert code == 0, err
    ckpt = load_checkpoint(run / "checkpoints" / "last.pth.tar")
    assert ckpt["extra"]["skipped_steps"] == [4] and ckpt["extra"]["global_step"] == 6 and _all_finite(ckpt)


def test_extreme_feature_values_give_the_nonfinite_diagnostic(tiny_synth, tiny_cfg, tmp_path: Path,
                                                              capsys) -> None:
    """Finite but huge features (3e38) overflow inside the network: the same diagnostic is expected."""
    _, feats, data = copy_dataset(tiny_synth, tmp_path / "data")
    vids = train_video_ids(data)
    first = vids[epoch_batches(len(vids), 2, tiny_cfg.init_rand_seed, 0)[0][0]]
    np.save(feats / f"{first}.npy", np.full((200, 16), 3e38, np.float32))
    code, err = run_cli(train_args(tiny_synth, tmp_path / "run", f"dataset.feat_folder={feats}",
                                   extra=["--max-steps", "1"]), capsys)
    assert_error(code, err, 1, "non-finite", first, "--skip-nonfinite")
