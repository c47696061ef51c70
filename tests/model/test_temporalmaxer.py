"""TemporalMaxer against its golden files (``tests/golden/variants``): init, layout, sizes, eval forward."""

from __future__ import annotations

import copy
import json
import types
from typing import Any

import numpy as np
import pytest
import torch

from tadformer.engine.optim import param_groups
from tadformer.model import TemporalMaxer, build_model
from tadformer.model.temporalmaxer import ConvPoolerBackbone, GroupNormNeck, MaxPoolBlock
from variants_golden import VARIANTS, config, eval_forward, npz, raw_config

CASE = "temporalmaxer"


def _ns(d: Any) -> Any:
    return types.SimpleNamespace(**{k: _ns(v) for k, v in d.items()}) if isinstance(d, dict) else d


def test_init_is_bit_exact_with_the_repository_seed() -> None:
    torch.manual_seed(1234567891)
    model = build_model(config(CASE))
    assert isinstance(model, TemporalMaxer)
    sd, ref = model.state_dict(), npz(f"{CASE}_weights")
    assert list(sd) == list(ref)  # official names and order: 28 entries, no neck entry
    assert len(sd) == 28 and not any(k.startswith("neck.") for k in sd)
    for key, value in ref.items():
        assert np.array_equal(sd[key].numpy(), value), key


def test_builds_from_the_raw_repository_dict_too() -> None:
    """The repository's own effective config (a plain namespace tree, as its loader returns it)."""
    torch.manual_seed(1234567891)
    sd = build_model(_ns(raw_config(CASE))).state_dict()
    assert all(np.array_equal(sd[k].numpy(), v) for k, v in npz(f"{CASE}_weights").items())


def test_parameter_counts_and_groups() -> None:
    manifest = json.loads((VARIANTS / "manifest.json").read_text())
    model = build_model(config(CASE))
    assert sum(p.numel() for p in model.parameters()) == manifest["tiny"][CASE]["parameters"] == 19_404
    groups = param_groups(model, 0.05)
    steps = npz(f"{CASE}_train_step")
    assert groups[0]["param_names"] == [str(n) for n in steps["param_groups/decay"]]
    assert groups[1]["param_names"] == [str(n) for n in steps["param_groups/no_decay"]]
    assert [g["weight_decay"] for g in groups] == list(steps["param_groups/weight_decay"])


def test_full_size_thumos_counts_equal_the_manifest() -> None:
    full = json.loads((VARIANTS / "manifest.json").read_text())["full_size_thumos"][CASE]
    raw = copy.deepcopy(raw_config(CASE))
    raw["dataset"].update(input_dim=2048, num_classes=20, max_seq_len=2304)
    raw["model"].update(embd_dim=512, fpn_dim=512, head_dim=512, input_dim=2048, num_classes=20, max_seq_len=2304)
    model = build_model(_ns(raw))
    groups = param_groups(model, 0.05)
    assert sum(p.numel() for p in model.parameters()) == full["total_parameters"] == 7_117_852
    assert len(model.state_dict()) == full["num_state_dict_entries"]
    assert [len(g["params"]) for g in groups] == [full["num_decay_tensors"], full["num_no_decay_tensors"]]
    assert sum(p.numel() for p in groups[0]["params"]) == full["decay_elements"]
    assert sum(p.numel() for p in groups[1]["params"]) == full["no_decay_elements"]


@pytest.mark.parametrize("video", [0, 1])
def test_eval_forward_matches_golden(video: int) -> None:
    fwd = npz(f"{CASE}_forward")
    batch, out, fpn = eval_forward(CASE, video)
    assert batch.feats.shape[-1] == int(fwd[f"video{video}/T_pad"])  # 576 and 704 (next multiple of 32)
    assert int(batch.mask.sum()) == int(fwd[f"video{video}/T"])
    for lvl in range(6):
        assert torch.equal(out.masks[lvl], torch.from_numpy(fwd[f"video{video}/masks_l{lvl}"]))
        for name, got in (("cls_logits", out.cls_logits[lvl]), ("offsets", out.offsets[lvl])):
            torch.testing.assert_close(got, torch.from_numpy(fwd[f"video{video}/{name}_l{lvl}"]),
                                       atol=1e-5, rtol=1e-5)
        n = out.masks[lvl].shape[1]
        points = torch.from_numpy(fwd[f"points_l{lvl}"][:n])
        got_points = torch.stack([out.points.split(out.points.t_grid)[lvl], *out.points.split(out.points.reg_range,
                                  dim=0)[lvl].unbind(-1), out.points.split(out.points.stride)[lvl]], dim=-1)
        assert torch.equal(got_points, points)
    for lvl in (3, 4, 5):
        key = f"video{video}/fpn_feats_l{lvl}"
        if key in fwd:
            torch.testing.assert_close(fpn[lvl], torch.from_numpy(fwd[key]), atol=1e-5, rtol=1e-5)


def test_padding_changes_valid_outputs_like_the_reference() -> None:
    """The neck's GroupNorm statistics span the padding: so must the padded length (576 here, not 608)."""
    from variants_golden import trained_model

    batch, out, _ = eval_forward(CASE, 0)
    model = trained_model(CASE)
    longer = torch.nn.functional.pad(batch.feats, (0, 32))
    mask = torch.nn.functional.pad(batch.mask, (0, 32))
    with torch.no_grad():
        other = model(longer, mask)
    n = int(batch.mask.sum())
    assert float((other.cls_logits[0][0, :n] - out.cls_logits[0][0, :n]).abs().max()) > 1e-3


def test_parts_behave_like_the_reference() -> None:
    x = torch.arange(2 * 4 * 8, dtype=torch.float32).reshape(2, 4, 8)
    mask = torch.arange(8)[None, None, :] < torch.tensor([8, 5])[:, None, None]
    y, m = MaxPoolBlock()(x, mask)
    assert y.shape == (2, 4, 4) and torch.equal(m, mask[..., ::2])
    assert torch.equal(y[0], torch.nn.functional.max_pool1d(x[0:1], 3, 2, 1)[0])
    assert float(y[1, :, 3].abs().max()) == 0.0  # masked step
    neck = GroupNormNeck([4, 4], 4)
    assert not list(neck.parameters()) and neck.fpn_norms[0] is neck.fpn_norms[1]  # one shared GroupNorm
    bb = ConvPoolerBackbone(3, 8, 3, (2, 2))
    feats, masks = bb(torch.randn(1, 3, 16), torch.ones(1, 1, 16, dtype=torch.bool))
    assert [f.shape[-1] for f in feats] == [16, 8, 4] and [mm.shape[-1] for mm in masks] == [16, 8, 4]
    with pytest.raises(ValueError, match="divisible"):
        MaxPoolBlock()(torch.zeros(1, 2, 7), torch.ones(1, 1, 7, dtype=torch.bool))


def test_several_feature_streams() -> None:
    """Like TemporalMaxer's backbone: one 1x1 projection per stream, then the embedding."""
    from tadformer.config import config_from_dict

    raw = copy.deepcopy(raw_config(CASE))
    raw["dataset"]["input_dim"] = [16, 8]
    raw["model"].update(embd_dim=[16, 16], input_dim=[16, 8])
    model = build_model(config_from_dict(raw)).eval()
    assert "backbone.proj.1.conv.weight" in model.state_dict()
    with torch.no_grad():
        out = model(torch.randn(1, 24, 576), torch.ones(1, 576, dtype=torch.bool))
    assert out.cls_logits[0].shape == (1, 576, 4)
