"""Checkpoint saving/loading: atomicity, clear errors, official formats, RNG resume."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tadformer.engine.checkpoint as ckpt_mod
from tadformer.engine.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    WeightsMismatchError,
    capture_rng_state,
    load_checkpoint,
    load_model_weights,
    restore_rng_state,
    save_checkpoint,
)
from tadformer.engine.ema import ModelEma
from tadformer.engine.optim import WarmupCosineSchedule


class Net(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.embd = nn.Conv1d(3, width, 3)
        self.head = nn.Linear(width, 2)


def _save(path: Path, model: nn.Module | None = None, epoch: int = 5) -> dict[str, Any]:
    model = model if model is not None else Net()
    ema = ModelEma(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = WarmupCosineSchedule(opt, warmup_steps=2, max_steps=10)
    save_checkpoint(path, model=model, ema=ema, optimizer=opt, scheduler=sched, epoch=epoch,
                    loss_normalizer_state={"value": 92.7}, rng_state=capture_rng_state(),
                    config_dict={"opt": {"learning_rate": 1e-3, "schedule_steps": (1, 2)}},
                    class_names=["A", "B"], extra={"mAP": 0.5})
    return {"model": model, "ema": ema, "opt": opt, "sched": sched}


def test_round_trip_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "run" / "epoch_005.pth.tar"
    saved = _save(path)
    raw = torch.load(path, weights_only=True)  # our format must be safe-loadable
    assert raw["epoch"] == 5 and raw["class_names"] == ["A", "B"] and raw["extra"] == {"mAP": 0.5}
    assert raw["config"]["opt"]["learning_rate"] == 1e-3
    ckpt = load_checkpoint(path)
    for key, value in saved["model"].state_dict().items():
        torch.testing.assert_close(ckpt["state_dict"][key], value, rtol=0, atol=0)
    sched = WarmupCosineSchedule(torch.optim.AdamW(Net().parameters(), lr=1e-3), 2, 10)
    sched.load_state_dict(ckpt["scheduler"])
    assert sched.last_epoch == saved["sched"].last_epoch
    assert list(tmp_path.joinpath("run").iterdir()) == [path]  # no temp file left


def test_failed_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pth.tar"
    _save(path, epoch=1)
    before = path.read_bytes()

    def broken_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"PK\x03\x04 partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(CheckpointWriteError, match=r"last\.pth\.tar.*No space left"):
        _save(path, epoch=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth.tar"]
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1


def test_non_plain_config_rejected_before_writing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"config\['when'\] has type date"):
        import datetime

        save_checkpoint(tmp_path / "c.pt", model=Net(), ema=None, optimizer=None, scheduler=None, epoch=0,
                        config_dict={"when": datetime.date(2024, 1, 1)})
    assert not list(tmp_path.iterdir())


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(
    "kind", ["missing", "truncated", "empty", "json", "pickle", "unsafe", "list", "folder"]
)
def test_load_errors_are_clear(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.pth.tar"
    if kind == "truncated":
        _save(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "json":
        path.write_text(json.dumps({"state_dict": {}}))
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(Net()))
    elif kind == "unsafe":
        torch.save({"state_dict": Net().state_dict(), "model": Net()}, path)  # a pickled nn.Module
    elif kind == "list":
        torch.save([torch.ones(1)], path)
    elif kind == "folder":
        path.mkdir()
    expected: dict[str, tuple[type[Exception], str]] = {
        "missing": (FileNotFoundError, "checkpoint not found"),
        "truncated": (CheckpointError, "truncated or corrupted"),
        "empty": (CheckpointError, "empty"),
        "json": (CheckpointError, "JSON"),
        "pickle": (CheckpointError, "weights_only"),
        "unsafe": (CheckpointError, "weights_only=True loading refuses.*trusted=True"),
        "list": (CheckpointError, "holds a list"),
        "folder": (CheckpointError, "folder"),
    }
    error, message = expected[kind]
    with pytest.raises(error, match=message) as info:
        load_checkpoint(path)
    assert "bad.pth.tar" in str(info.value)
    if kind == "unsafe":
        assert isinstance(load_checkpoint(path, trusted=True)["model"], Net)


def _official(model: nn.Module, ema_model: nn.Module) -> dict[str, Any]:
    """An official-style checkpoint: DataParallel 'module.' keys in state_dict and state_dict_ema."""
    return {
        "epoch": 34,
        "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
        "state_dict_ema": {f"module.{k}": v for k, v in ema_model.state_dict().items()},
        "optimizer": torch.optim.AdamW(model.parameters()).state_dict(),
        "scheduler": {"last_epoch": 3500, "warmup_epochs": 500, "max_epochs": 3500},
    }


def test_official_checkpoint_with_module_prefix(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trained, ema_weights = Net(), Net()
    path = tmp_path / "epoch_034.pth.tar"
    torch.save(_official(trained, ema_weights), path)
    model = Net()
    assert load_model_weights(model, path) == "state_dict_ema from epoch_034.pth.tar (epoch 34)"
    for key, value in ema_weights.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert load_model_weights(model, path, prefer_ema=False).startswith("state_dict from epoch_034.pth.tar")
    torch.testing.assert_close(model.head.weight, trained.head.weight, rtol=0, atol=0)


def test_bare_state_dict_and_our_checkpoint(tmp_path: Path) -> None:
    source = Net()
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "bare.pth")
    model = Net()
    assert load_model_weights(model, tmp_path / "bare.pth") == "state dict from bare.pth"
    torch.testing.assert_close(model.embd.weight, source.embd.weight, rtol=0, atol=0)
    saved = _save(tmp_path / "ours.pt", epoch=7)
    assert load_model_weights(model, tmp_path / "ours.pt") == "state_dict_ema from ours.pt (epoch 7)"
    torch.testing.assert_close(model.embd.weight, saved["ema"].module.embd.weight, rtol=0, atol=0)
    described = load_model_weights(model, {"state_dict": source.state_dict()})
    assert described == "state_dict from in-memory checkpoint"


def test_mismatch_lists_keys_and_shapes() -> None:
    source = {f"module.{k}": v for k, v in Net(width=6).state_dict().items()}
    source.update({f"module.extra.{i}": torch.zeros(1) for i in range(12)})
    del source["module.head.bias"]
    with pytest.raises(WeightsMismatchError) as info:
        load_model_weights(Net(width=4), {"state_dict": source})
    text = str(info.value)
    assert "missing keys (1): head.bias" in text
    assert "unexpected keys (12): extra.0," in text and "... and 2 more" in text
    assert "shape mismatches (3)" in text and "embd.weight: checkpoint [6, 3, 3] vs model [4, 3, 3]" in text


def test_no_weights_in_checkpoint() -> None:
    with pytest.raises(CheckpointError, match="holds no model weights.*'epoch'"):
        load_model_weights(Net(), {"epoch": 3, "optimizer": {}})


def _draws() -> tuple[list[float], list[float], list[float]]:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_rng_capture_restore_reproduces_draws(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    state = capture_rng_state()
    first = _draws() + (np.random.randn(), random.gauss(0, 1))
    path = tmp_path / "rng.pt"
    save_checkpoint(path, model=Net(), ema=None, optimizer=None, scheduler=None, epoch=0, rng_state=state)
    restore_rng_state(load_checkpoint(path)["rng_state"])
    assert _draws() + (np.random.randn(), random.gauss(0, 1)) == first


def test_restore_rng_state_missing_entry() -> None:
    state = capture_rng_state()
    del state["numpy"]
    with pytest.raises(CheckpointError, match="numpy"):
        restore_rng_state(state)


def test_torch_scheduler_and_numpy_values_round_trip(tmp_path: Path) -> None:
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 2, 4], gamma=0.5)  # Counter inside
    path = tmp_path / "ms.pt"
    save_checkpoint(path, model=model, ema=None, optimizer=opt, scheduler=sched, epoch=1,
                    extra={"best": np.float64(0.25), "curve": np.arange(3)})
    ckpt = load_checkpoint(path)
    assert ckpt["extra"]["best"] == 0.25 and type(ckpt["extra"]["best"]) is float
    torch.testing.assert_close(ckpt["extra"]["curve"], torch.arange(3))
    opt2 = torch.optim.SGD(Net().parameters(), lr=1.0)
    sched2 = torch.optim.lr_scheduler.MultiStepLR(opt2, milestones=[9], gamma=0.1)
    sched2.load_state_dict(ckpt["scheduler"])
    lrs = []
    for _ in range(5):
        lrs.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert lrs == [1.0, 1.0, 0.25, 0.25, 0.125]


def test_official_tiny_checkpoint_keys_load_into_our_model(golden_dir: Path) -> None:
    """Pins our model's key set/shapes to the official one: golden weights (official names) with the
    DataParallel prefix, as in an official `epoch_*.pth.tar`, load strictly."""
    model_pkg = pytest.importorskip("tadformer.model")
    if not hasattr(model_pkg, "build_model"):
        pytest.skip("tadformer.model.build_model is not available yet")
    from tadformer.config import config_from_dict

    model = model_pkg.build_model(config_from_dict(json.loads((golden_dir / "tiny_config.json").read_text())))
    with np.load(golden_dir / "model_weights_trained.npz") as data:
        weights = {f"module.{k}": torch.from_numpy(data[k]) for k in data.files}
    official = {"epoch": 2, "state_dict": weights, "state_dict_ema": weights}
    assert load_model_weights(model, official) == "state_dict_ema from in-memory checkpoint (epoch 2)"
    state = model.state_dict()
    assert [f"module.{k}" for k in state] == list(weights)  # official state-dict order
    for key, value in state.items():
        torch.testing.assert_close(value, weights[f"module.{key}"], rtol=0, atol=0)
