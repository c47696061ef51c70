"""ModelEma vs the golden `ema.npz` (standalone recomputation of the README) and hand-made cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tadformer.engine.ema import ModelEma


class _Weights(nn.Module):
    """A module whose state dict holds exactly the given entries, in the given order."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        super().__init__()
        for key, array in arrays.items():
            *path, leaf = key.split(".")
            owner: nn.Module = self
            for part in path:
                if not hasattr(owner, part):
                    owner.add_module(part, nn.Module())
                owner = getattr(owner, part)
            owner.register_parameter(leaf, nn.Parameter(torch.from_numpy(array.copy())))

    def assign(self, arrays: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for key, value in self.state_dict().items():
                value.copy_(torch.from_numpy(arrays[key]))


def _load(path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}


def test_ema_matches_golden(golden_dir: Path) -> None:
    initial = _load(golden_dir / "model_weights.npz")
    after_step2 = _load(golden_dir / "train_step.npz", "weights_after_step2/")
    trained = _load(golden_dir / "model_weights_trained.npz")
    expected = _load(golden_dir / "ema.npz")
    model = _Weights(initial)
    assert list(model.state_dict()) == list(initial) and len(initial) == 229
    ema = ModelEma(model, decay=0.999)
    for weights in (initial, after_step2, trained):  # step-1 weights equal the initial ones
        model.assign(weights)
        ema.update(model)
    got = ema.state_dict()
    assert list(got) == list(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], torch.from_numpy(value), atol=1e-7, rtol=1e-6, msg=key)
    # the EMA moved away from the initial weights (so the check above is not vacuous)
    moved = max(float((got[k] - torch.from_numpy(v)).abs().max()) for k, v in initial.items())
    assert moved > 1e-6


def test_ema_is_eval_copy_without_grad() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.train()
    ema = ModelEma(model)
    assert not ema.module.training and model.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    assert ema.state_dict()["0.weight"].data_ptr() != model.state_dict()["0.weight"].data_ptr()


def test_ema_update_hand_derived_and_int_buffers() -> None:
    model = nn.BatchNorm1d(2)  # float params/buffers + int64 num_batches_tracked
    ema = ModelEma(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)  # ema weight 1 -> 0.9*1 + 0.1*3 = 1.2
        model.state_dict()["num_batches_tracked"].fill_(7)
    ema.update(model)
    state = ema.state_dict()
    torch.testing.assert_close(state["weight"], torch.full((2,), 1.2))
    torch.testing.assert_close(state["bias"], torch.zeros(2))
    assert int(state["num_batches_tracked"]) == 7
    ema.update(model)  # 0.9*1.2 + 0.1*3 = 1.38
    torch.testing.assert_close(ema.state_dict()["weight"], torch.full((2,), 1.38))


def test_ema_state_dict_round_trip_and_key_mismatch() -> None:
    model = nn.Linear(3, 1)
    ema = ModelEma(model, decay=0.5)
    state = {k: v + 1 for k, v in ema.state_dict().items()}
    other = ModelEma(nn.Linear(3, 1))
    other.load_state_dict(state)
    for key, value in state.items():
        torch.testing.assert_close(other.state_dict()[key], value)
    with pytest.raises(ValueError, match="keys differ"):
        ema.update(nn.Sequential(nn.Linear(3, 1)))
    with pytest.raises(ValueError, match="decay"):
        ModelEma(model, decay=1.5)
