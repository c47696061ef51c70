"""Checkpoints written by TriDet's and TemporalMaxer's own training scripts load (``module.`` prefixes, EMA
weights), and a checkpoint of one architecture given with another's config is refused with a useful error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tadformer.engine.checkpoint import WeightsMismatchError, load_model_weights
from tadformer.engine.loading import load_for_inference
from variants_golden import VARIANTS, npz, prefixed

REPO_ROOT = Path(__file__).resolve().parents[2]


def _official_checkpoint(case: str, path: Path) -> dict[str, torch.Tensor]:
    """The layout of their train.py's ``save_checkpoint``: DataParallel ``module.`` keys, EMA alongside."""
    trained = prefixed(npz(f"{case}_train_step"), "weights_after_step3")
    ema = {k: v + 0.5 for k, v in trained.items()}  # distinguishable from the regular weights
    torch.save({"epoch": 40, "state_dict": {f"module.{k}": v for k, v in trained.items()},
                "state_dict_ema": {f"module.{k}": v for k, v in ema.items()},
                "optimizer": {}, "scheduler": {}}, path)
    return ema


@pytest.mark.parametrize(("case", "config"), [("tridet", "thumos_i3d_tridet"),
                                              ("temporalmaxer", "thumos_i3d_temporalmaxer")])
def test_repository_checkpoints_load_with_ema(tmp_path: Path, case: str, config: str) -> None:
    ckpt = tmp_path / "epoch_040.pth.tar"
    ema = _official_checkpoint(case, ckpt)
    tiny = [f"{k}={v}" for k, v in (("dataset.input_dim", 32), ("dataset.num_classes", 4), ("model.embd_dim", 32),
                                    ("model.fpn_dim", 32), ("model.head_dim", 32), ("dataset.max_seq_len", 576))]
    if case == "tridet":
        tiny.append("model.sgp_mlp_dim=48")
    loaded = load_for_inference(ckpt, REPO_ROOT / "configs" / f"{config}.yaml", overrides=tiny)
    assert "state_dict_ema" in loaded.weights_description
    sd = loaded.model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ema.items())
    assert not loaded.model.training


@pytest.mark.parametrize(("weights_case", "config", "want"), [
    ("tridet", "thumos_i3d", "configs/thumos_i3d_tridet.yaml"),
    ("temporalmaxer", "thumos_i3d_tridet", "configs/thumos_i3d_temporalmaxer.yaml"),
])
def test_wrong_architecture_lists_keys_and_names_the_config(tmp_path: Path, weights_case: str, config: str,
                                                            want: str) -> None:
    ckpt = tmp_path / "ckpt.pth.tar"
    _official_checkpoint(weights_case, ckpt)
    with pytest.raises(WeightsMismatchError) as info:
        load_for_inference(ckpt, REPO_ROOT / "configs" / f"{config}.yaml")
    msg = str(info.value)
    assert "missing keys" in msg  # (TemporalMaxer's names are a subset of TriDet's: nothing unexpected there)
    assert ("unexpected keys" in msg) == (weights_case == "tridet")
    assert want in msg and "model_name" in msg


def test_architecture_hint_is_silent_for_the_same_architecture(tmp_path: Path) -> None:
    from variants_golden import initial_model

    model = initial_model("temporalmaxer")
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith("reg_head.")}
    with pytest.raises(WeightsMismatchError) as info:
        load_model_weights(model, weights)
    assert "missing keys" in str(info.value) and "use a" not in str(info.value)
    assert (VARIANTS / "manifest.json").is_file()
