"""Optimiser groups and LR schedules vs the golden files (`lr_schedule.json`, `param_groups.json`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tadformer.config import OptConfig
from tadformer.engine.optim import (
    ParamGroupError,
    WarmupCosineSchedule,
    WarmupMultiStepSchedule,
    build_optimizer,
    build_scheduler,
    param_groups,
    total_epochs,
)


def _optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW([nn.Parameter(torch.zeros(2))], lr=lr)


def _run(optimizer: torch.optim.Optimizer, scheduler: Any, n: int) -> list[float]:
    """LR used by the optimiser at iterations 0..n-1 (optimizer.step, then scheduler.step)."""
    lrs = []
    for _ in range(n):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


# ----------------------------------------------------------------------------------- LR schedules
def test_lr_schedule_matches_golden_all_iterations(golden_dir: Path) -> None:
    golden = json.loads((golden_dir / "lr_schedule.json").read_text())
    recipe = golden["recipe"]
    cfg = OptConfig(learning_rate=recipe["learning_rate"], warmup=True, warmup_epochs=recipe["warmup_epochs"],
                    epochs=recipe["epochs"], schedule_type="cosine")
    opt = _optimizer(cfg.learning_rate)
    sched = build_scheduler(opt, cfg, recipe["iters_per_epoch"])
    assert isinstance(sched, WarmupCosineSchedule)
    assert (sched.warmup_steps, sched.max_steps) == (recipe["warmup_steps"], recipe["max_steps"])
    lrs = np.array(_run(opt, sched, recipe["max_steps"]))
    expected = np.array(golden["lr_all_iterations"])
    assert lrs.shape == expected.shape == (3500,)
    np.testing.assert_allclose(lrs, expected, rtol=1e-9, atol=0)
    np.testing.assert_allclose(lrs[golden["iterations"]], golden["lr"], rtol=1e-9, atol=0)


def test_lr_schedule_tiny_recipe(golden_dir: Path) -> None:
    tiny = json.loads((golden_dir / "lr_schedule.json").read_text())["tiny_recipe"]
    cfg = OptConfig(learning_rate=tiny["learning_rate"], warmup_epochs=tiny["warmup_epochs"],
                    epochs=tiny["epochs"])
    opt = _optimizer(cfg.learning_rate)
    lrs = _run(opt, build_scheduler(opt, cfg, tiny["iters_per_epoch"]), tiny["max_steps"])
    np.testing.assert_allclose(lrs, tiny["lr"], rtol=1e-9, atol=0)
    assert lrs[:3] == [0.0, 0.005, 0.01]


def test_warmup_multistep_hand_derived() -> None:
    # base 1, W = 2 iterations, milestones 1 and 2 epochs (2 iters/epoch) -> iterations W+2 and W+4
    cfg = OptConfig(learning_rate=1.0, warmup_epochs=1, epochs=4, schedule_type="multistep",
                    schedule_steps=(1, 2), schedule_gamma=0.1)
    opt = _optimizer(1.0)
    sched = build_scheduler(opt, cfg, 2)
    assert isinstance(sched, WarmupMultiStepSchedule)
    assert sched.milestones == [2, 4]
    lrs = _run(opt, sched, 9)
    np.testing.assert_allclose(lrs, [0.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01, 0.01], rtol=1e-12)


def test_warmup_five_steps_linear() -> None:
    opt = _optimizer(0.8)
    lrs = _run(opt, WarmupCosineSchedule(opt, warmup_steps=5, max_steps=10), 6)
    np.testing.assert_allclose(lrs, [0.0, 0.2, 0.4, 0.6, 0.8, 0.8], rtol=1e-12)


def test_no_warmup_variants() -> None:
    cos = dataclasses.replace(OptConfig(), learning_rate=2.0, warmup=False, epochs=2)
    opt = _optimizer(2.0)
    lrs = _run(opt, build_scheduler(opt, cos, 5), 11)  # T_max = 10 iterations, eta_min 0
    np.testing.assert_allclose(lrs[0], 2.0)
    np.testing.assert_allclose(lrs[5], 1.0, rtol=1e-12)
    np.testing.assert_allclose(lrs[10], 0.0, atol=1e-15)
    step = dataclasses.replace(cos, schedule_type="multistep", schedule_steps=(1,), schedule_gamma=0.5)
    opt = _optimizer(2.0)
    lrs = _run(opt, build_scheduler(opt, step, 3), 5)
    np.testing.assert_allclose(lrs, [2.0, 2.0, 2.0, 1.0, 1.0])


def test_scheduler_resume_continues_identically() -> None:
    def fresh() -> tuple[torch.optim.Optimizer, WarmupCosineSchedule]:
        opt = _optimizer(1e-3)
        return opt, WarmupCosineSchedule(opt, warmup_steps=4, max_steps=20)

    opt, sched = fresh()
    reference = _run(opt, sched, 20)
    opt, sched = fresh()
    _run(opt, sched, 7)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    opt2, sched2 = fresh()
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    assert _run(opt2, sched2, 13) == reference[7:]


def test_scheduler_loads_official_state_names() -> None:
    opt, sched = _optimizer(1.0), None
    sched = WarmupCosineSchedule(opt, warmup_steps=3, max_steps=9)
    state = sched.state_dict()
    official = {("warmup_epochs" if k == "warmup_steps" else "max_epochs" if k == "max_steps" else k): v
                for k, v in state.items()}
    official.update(warmup_epochs=5, max_epochs=50)
    sched.load_state_dict(official)
    assert (sched.warmup_steps, sched.max_steps) == (5, 50)


def test_cosine_rejects_max_not_above_warmup() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        WarmupCosineSchedule(_optimizer(1.0), warmup_steps=5, max_steps=5)


def test_build_scheduler_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="iters_per_epoch"):
        build_scheduler(_optimizer(1.0), OptConfig(), 0)


def test_total_epochs() -> None:
    assert total_epochs(OptConfig(epochs=30, warmup_epochs=5)) == 35
    assert total_epochs(OptConfig(epochs=30, warmup_epochs=5, warmup=False)) == 35  # official quirk
    assert total_epochs(OptConfig(epochs=30, warmup_epochs=5, early_stop_epochs=12)) == 12


# ------------------------------------------------------------------------------------ param groups
class ChannelLayerNorm(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, c, 1))
        self.bias = nn.Parameter(torch.zeros(1, c, 1))


class Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))


class AffineDropPath(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1, c, 1), 1e-4))


class MaskedConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, 3, padding=1, bias=bias)


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embd = nn.ModuleList([MaskedConv(3, 4, bias=False), MaskedConv(4, 4)])
        self.norm = ChannelLayerNorm(4)
        self.proj = nn.Linear(4, 2)
        self.ln = nn.LayerNorm(2)
        self.scales = nn.ModuleList([Scale(), Scale()])
        self.drop_path = AffineDropPath(4)
        self.rel_pe = nn.Parameter(torch.zeros(5))


def test_param_groups_official_rule() -> None:
    groups = param_groups(Toy(), weight_decay=0.05)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert groups[0]["param_names"] == ["embd.0.conv.weight", "embd.1.conv.weight", "proj.weight"]
    assert groups[1]["param_names"] == [
        "drop_path.scale", "embd.1.conv.bias", "ln.bias", "ln.weight", "norm.bias", "norm.weight",
        "proj.bias", "rel_pe", "scales.0.scale", "scales.1.scale",
    ]
    model = Toy()
    named = dict(model.named_parameters())
    for group in param_groups(model, 0.1):
        assert all(p is named[n] for p, n in zip(group["params"], group["param_names"]))


def test_param_groups_unknown_parameter_named() -> None:
    model = Toy()
    model.proj.register_parameter("gain", nn.Parameter(torch.ones(2)))
    with pytest.raises(ParamGroupError, match=r"'proj\.gain'.*Linear"):
        param_groups(model, 0.05)


def test_param_groups_shared_parameter_once() -> None:
    model = Toy()
    model.tied = nn.Linear(4, 2)
    model.tied.weight = model.proj.weight
    names = [n for g in param_groups(model, 0.05) for n in g["param_names"]]
    assert names.count("proj.weight") == 1 and "tied.weight" not in names
    assert len(names) == len(list(model.parameters()))


def test_build_optimizer_adamw_and_sgd() -> None:
    adamw = build_optimizer(Toy(), OptConfig(type="AdamW", learning_rate=1e-4, weight_decay=0.05))
    assert isinstance(adamw, torch.optim.AdamW)
    g0 = adamw.param_groups[0]
    assert (g0["lr"], g0["betas"], g0["eps"], g0["amsgrad"], g0["weight_decay"]) == (1e-4, (0.9, 0.999), 1e-8,
                                                                                       False, 0.05)
    assert adamw.param_groups[1]["weight_decay"] == 0.0
    sgd = build_optimizer(Toy(), OptConfig(type="SGD", learning_rate=0.1, momentum=0.8, weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8
    bad = SimpleNamespace(type="Adam", learning_rate=1e-3, weight_decay=0.0, momentum=0.9)
    with pytest.raises(ValueError, match="'Adam'"):
        build_optimizer(Toy(), bad)


# ------------------------------------------------------------- golden groups of the official model
def _build_model(golden_dir: Path, full: bool) -> nn.Module:
    model_pkg = pytest.importorskip("tadformer.model")
    if not hasattr(model_pkg, "build_model"):
        pytest.skip("tadformer.model.build_model is not available yet")
    from tadformer.config import config_from_dict

    raw = json.loads((golden_dir / "tiny_config.json").read_text())
    if full:
        raw["dataset"].update(input_dim=2048, num_classes=20, max_seq_len=2304)
        raw["model"].update(input_dim=2048, num_classes=20, max_seq_len=2304, embd_dim=512, fpn_dim=512,
                            head_dim=512)
    return model_pkg.build_model(config_from_dict(raw))


@pytest.mark.parametrize("which", ["tiny", "thumos_full"])
def test_param_groups_match_golden(golden_dir: Path, which: str) -> None:
    golden = json.loads((golden_dir / "param_groups.json").read_text())[which]
    model = _build_model(golden_dir, full=which == "thumos_full")
    assert sum(p.numel() for p in model.parameters()) == golden["total_parameters"]
    groups = param_groups(model, 0.05)
    if which == "tiny":
        assert groups[0]["param_names"] == golden["decay_names"]
        assert groups[1]["param_names"] == golden["no_decay_names"]
        return
    for group, key in zip(groups, ("decay", "no_decay")):
        assert group["param_names"] == golden[key]["names"]
        assert group["weight_decay"] == golden[key]["weight_decay"]
        assert (len(group["params"]), sum(p.numel() for p in group["params"])) == (
            golden[key]["num_tensors"], golden[key]["num_elements"])
