"""The training engine on a tiny synthetic dataset: it learns, checkpoints, and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tadformer.engine.checkpoint import load_checkpoint
from tadformer.engine.train import FitOptions, TrainingDiverged, epoch_batches, fit


def _log(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def full_run(tiny_cfg, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("full_run")
    fit(tiny_cfg, run, FitOptions(device="cpu", progress=False, ckpt_freq=2))
    return run


def test_epoch_batches_deterministic_and_drop_last() -> None:
    a = epoch_batches(7, 2, seed=1, epoch=0)
    assert a == epoch_batches(7, 2, seed=1, epoch=0)
    assert a != epoch_batches(7, 2, seed=1, epoch=1)
    assert len(a) == 3 and all(len(b) == 2 for b in a)
    assert len({i for b in a for i in b}) == 6


def test_run_dir_contents(full_run: Path, tiny_cfg) -> None:
    records = _log(full_run)
    # 6 videos, batch 2 -> 3 steps per epoch, 2 + 1 epochs
    assert [r["step"] for r in records] == list(range(1, 10))
    assert records[0]["lr"] == 0.0  # the official schedule's first step runs at lr 0
    assert (full_run / "config.yaml").is_file()
    assert sorted(p.name for p in (full_run / "checkpoints").iterdir()) == [
        "epoch_002.pth.tar", "epoch_003.pth.tar", "last.pth.tar"]
    ckpt = load_checkpoint(full_run / "checkpoints" / "epoch_003.pth.tar")
    assert ckpt["epoch"] == 3 and len(ckpt["class_names"]) == 20 and all(ckpt["class_names"])
    assert ckpt["config"]["model"]["embd_dim"] == 16
    assert ckpt["state_dict_ema"] is not None and ckpt["optimizer"] is not None


def test_loss_goes_down(tiny_cfg, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg_text = ["opt.epochs=10", "opt.warmup_epochs=1", "train_cfg.droppath=0.0", "opt.learning_rate=0.005"]
    from dataclasses import replace

    from conftest import TINY_OVERRIDES
    from tadformer.config import load_config

    cfg = load_config(Path(str(tiny_cfg.dataset.json_file)).parent.parent / "config.yaml",
                      [*TINY_OVERRIDES, *cfg_text])
    cfg = replace(cfg, init_rand_seed=5)
    fit(cfg, tmp_path, FitOptions(device="cpu", progress=False, ckpt_freq=100))
    # the normaliser moves from 100 towards the number of positives, so compare the loss per positive
    losses = [r["final_loss"] * r["loss_normalizer"] / max(r["num_pos"], 1) for r in _log(tmp_path)]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.7 * first, (first, last)


def test_resume_mid_epoch_equals_uninterrupted(full_run: Path, tiny_cfg, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    fit(tiny_cfg, tmp_path, FitOptions(device="cpu", progress=False, ckpt_freq=2, max_steps=4))
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pth.tar")["extra"]["iter_in_epoch"] == 1
    fit(tiny_cfg, tmp_path, FitOptions(device="cpu", progress=False, ckpt_freq=2, resume=True))
    a = load_checkpoint(full_run / "checkpoints" / "epoch_003.pth.tar")
    b = load_checkpoint(tmp_path / "checkpoints" / "epoch_003.pth.tar")
    for key in ("state_dict", "state_dict_ema"):
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, atol=0, rtol=0, msg=f"{key}/{name}")
    assert a["loss_normalizer"] == b["loss_normalizer"]
    assert _log(tmp_path) == [dict(r, time_sec=s["time_sec"]) for r, s in zip(_log(full_run), _log(tmp_path))]


def test_resume_without_checkpoint_starts_from_scratch(tiny_cfg, tmp_path: Path, capsys) -> None:
    stale = tmp_path / "checkpoints" / ".last.pth.tar.999999999.0123abcd.tmp"  # a killed save's leftover
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    fit(tiny_cfg, tmp_path, FitOptions(device="cpu", progress=False, resume=True, max_steps=2))
    out = capsys.readouterr().out
    assert "no complete checkpoint" in out and "starting from scratch" in out
    assert "removed 1 temporary file" in out and not stale.exists()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pth.tar")["extra"]["global_step"] == 2
    assert [r["step"] for r in _log(tmp_path)] == [1, 2]


def test_resume_falls_back_to_the_newest_epoch_checkpoint(tiny_cfg, tmp_path: Path, capsys) -> None:
    fit(tiny_cfg, tmp_path, FitOptions(device="cpu", progress=False, ckpt_freq=1, max_steps=7))
    (tmp_path / "checkpoints" / "last.pth.tar").unlink()  # e.g. removed by hand
    fit(tiny_cfg, tmp_path, FitOptions(device="cpu", progress=False, resume=True, max_steps=7))
    assert "continuing from epoch_002.pth.tar" in capsys.readouterr().out
    assert [r["step"] for r in _log(tmp_path)] == list(range(1, 8))


def test_nonfinite_loss_stops_with_diagnostic(tiny_cfg, tmp_path: Path, monkeypatch) -> None:
    import tadformer.engine.step as train_mod

    real = train_mod.compute_losses
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            out["reg_loss"] = out["reg_loss"] * float("nan")
            out["final_loss"] = out["cls_loss"] + out["reg_loss"]
        return out

    monkeypatch.setattr(train_mod, "compute_losses", poisoned)
    with pytest.raises(TrainingDiverged, match=r"non-finite reg_loss .* videos \['video_validation"):
        fit(tiny_cfg, tmp_path, FitOptions(device="cpu", progress=False))
    calls["n"] = 0
    fit(tiny_cfg, tmp_path / "skip", FitOptions(device="cpu", progress=False, skip_nonfinite=True))
    ckpt = load_checkpoint(tmp_path / "skip" / "checkpoints" / "last.pth.tar")
    assert ckpt["extra"]["skipped_steps"] == [1]
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_loader_workers_are_capped_at_the_usable_cpus(tiny_cfg, tmp_path: Path, capsys) -> None:
    """More workers than CPUs (the official configs ask for 4): lowered with one notice, no PyTorch warning,
    and config.yaml keeps the configured value."""
    import warnings
    from dataclasses import replace

    from tadformer.config import load_config
    from tadformer.engine.batches import usable_cpus, usable_workers

    cpus = usable_cpus()
    assert usable_workers(cpus + 2) == cpus and usable_workers(0) == 0
    cfg = replace(tiny_cfg, loader=replace(tiny_cfg.loader, num_workers=cpus + 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(cfg, tmp_path, FitOptions(device="cpu", progress=False, max_steps=4))  # crosses an epoch boundary
    assert not [w for w in caught if "worker" in str(w.message)], [str(w.message) for w in caught]
    out = capsys.readouterr().out
    assert out.count(f"loader.num_workers={cpus + 2} lowered to {cpus}") == 1
    assert load_config(tmp_path / "config.yaml").loader.num_workers == cpus + 2
