"""Backbone and neck: pyramid shapes, mask subsampling, the block's skip path, golden features."""

from __future__ import annotations

import json
import math
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tadformer.model import build_model
from tadformer.model.backbone import ConvBackbone, ConvTransformerBackbone, TransformerBlock
from tadformer.model.neck import FPN1d, IdentityNeck


def _ns(d: Any) -> Any:
    return types.SimpleNamespace(**{k: _ns(v) for k, v in d.items()}) if isinstance(d, dict) else d


def _mask(lengths: list[int], t: int) -> torch.Tensor:
    return (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None])[:, None, :]


def _tiny_backbone() -> ConvTransformerBackbone:
    return ConvTransformerBackbone(6, 8, 2, 3, 72, (2, 2, 3), [5] * 4, 2, with_ln=True, path_pdrop=0.1)


def test_pyramid_lengths_and_masks() -> None:
    torch.manual_seed(0)
    bb = _tiny_backbone().eval()
    lengths = [72, 45, 9]
    mask = _mask(lengths, 72)
    feats, masks = bb(torch.randn(3, 6, 72), mask)
    assert [f.shape for f in feats] == [(3, 8, 72 // 2**l) for l in range(4)]
    for l, m in enumerate(masks):
        assert torch.equal(m, mask[..., :: 2**l])  # level-l mask = level-0 mask every 2^l steps
        assert m.sum(-1).view(-1).tolist() == [math.ceil(n / 2**l) for n in lengths]
        assert torch.all(feats[l] * ~m == 0)  # padded steps of every level are exactly zero


def test_transformer_block_skip_path_is_maxpool_of_raw_input() -> None:
    torch.manual_seed(1)
    block = TransformerBlock(4, 2, (2, 2), path_pdrop=0.1, mha_win_size=5).eval()
    with torch.no_grad():  # LayerScale 0 switches both residual branches off
        block.get_parameter("drop_path_attn.scale").zero_()
        block.get_parameter("drop_path_mlp.scale").zero_()
    x = -torch.rand(1, 4, 10) - 1.0  # all negative: zero padding in the max-pool would show
    mask = _mask([7], 10)
    y, m = block(x, mask)
    xp = torch.nn.functional.pad(x, (1, 1), value=float("-inf"))
    expect = torch.stack([xp[..., 2 * i : 2 * i + 3].amax(-1) for i in range(5)], -1) * m
    assert torch.equal(y, expect)
    assert m.tolist() == [[[True, True, True, True, False]]]


def test_block_and_backbone_registration_order() -> None:
    keys = list(TransformerBlock(4, 2, (1, 1), path_pdrop=0.1, mha_win_size=5).state_dict())
    assert keys[:4] == ["ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"]
    assert keys[-6:] == ["mlp.0.weight", "mlp.0.bias", "mlp.3.weight", "mlp.3.bias",
                         "drop_path_attn.scale", "drop_path_mlp.scale"]
    no_dp = list(TransformerBlock(4, 2, (1, 1), path_pdrop=0.0, mha_win_size=5).state_dict())
    assert "drop_path_attn.scale" not in no_dp  # identity when droppath is 0, like the official code
    bb = _tiny_backbone()
    assert all(torch.all(m.bias == 0) for m in bb.modules()
               if isinstance(m, torch.nn.Conv1d) and m.bias is not None)


def test_golden_backbone_and_neck_features(golden_dir: Path) -> None:
    cfg = _ns(json.loads((golden_dir / "tiny_config.json").read_text()))
    model = build_model(cfg)
    w = np.load(golden_dir / "model_weights_trained.npz")
    model.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files})
    model.eval()
    f = np.load(golden_dir / "forward_eval.npz")
    for i in (0, 3):
        x = torch.from_numpy(f[f"video{i}/batched_inputs"])
        mask = torch.from_numpy(f[f"video{i}/batched_masks"])
        with torch.no_grad():
            bb_feats, bb_masks = model.backbone(x, mask)
            fpn_feats, fpn_masks = model.neck(bb_feats, bb_masks)
        for l in range(6):
            torch.testing.assert_close(bb_feats[l], torch.from_numpy(f[f"video{i}/backbone_feats_l{l}"]),
                                       atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(fpn_feats[l], torch.from_numpy(f[f"video{i}/fpn_feats_l{l}"]),
                                       atol=1e-5, rtol=1e-5)
            assert torch.equal(fpn_masks[l][:, 0], torch.from_numpy(f[f"video{i}/masks_l{l}"]))


def test_abs_position_encoding_is_added_at_valid_steps() -> None:
    torch.manual_seed(2)
    bb = ConvTransformerBackbone(6, 8, 2, 3, 72, (2, 0, 0), [5], 2, with_ln=True, use_abs_pe=True).eval()
    ref = ConvTransformerBackbone(6, 8, 2, 3, 72, (2, 0, 0), [5], 2, with_ln=True).eval()
    ref.load_state_dict(bb.state_dict())
    assert "pos_embd" not in bb.state_dict()  # non-persistent buffer
    x, mask = torch.randn(1, 6, 72), _mask([50], 72)
    diff = bb(x, mask)[0][0] - ref(x, mask)[0][0]
    torch.testing.assert_close(diff, bb.get_buffer("pos_embd") * mask, atol=1e-6, rtol=0)


def test_conv_backbone_and_fpn_neck_shapes() -> None:
    torch.manual_seed(3)
    bb = ConvBackbone(6, 8, 3, (2, 2, 3), 2, with_ln=True)
    mask = _mask([40, 17], 64)
    feats, masks = bb(torch.randn(2, 6, 64), mask)
    assert [f.shape for f in feats] == [(2, 8, 64 // 2**l) for l in range(4)]
    assert all(torch.equal(m, mask[..., :: 2**l]) for l, m in enumerate(masks))
    fpn = FPN1d([8] * 4, 16, 2.0, start_level=1)
    out, out_masks = fpn(feats, masks)
    assert [o.shape for o in out] == [(2, 16, 64 // 2**l) for l in range(1, 4)]
    assert all(torch.equal(a, b) for a, b in zip(out_masks, masks[1:]))
    keys = list(fpn.state_dict())
    assert keys[:3] == [f"lateral_convs.{i}.conv.weight" for i in range(3)]
    assert keys[3:6] == [f"fpn_convs.{i}.conv.weight" for i in range(3)]


def test_identity_neck_checks() -> None:
    neck = IdentityNeck([8] * 3, 8)
    assert list(neck.state_dict()) == [f"fpn_norms.{l}.{p}" for l in range(3) for p in ("weight", "bias")]
    with pytest.raises(ValueError, match="channels"):
        IdentityNeck([8, 16], 8)
    with pytest.raises(ValueError, match="expected 3 levels"):
        neck([torch.zeros(1, 8, 4)], [_mask([4], 4)])


def test_several_input_streams_are_projected_separately() -> None:
    """Official multi-feature embedding: stream i (its input_dim[i] channels) -> 1x1 conv -> embd_dim[i]
    channels; the concatenation (sum of embd_dim) is embedded. Checked by hand with fixed weights."""
    from tadformer.model.backbone import ConvTransformerBackbone

    bb = ConvTransformerBackbone([2, 3], [4, 1], 1, 3, 8, arch=(1, 0, 1), mha_win_size=[-1, -1], with_ln=False)
    assert bb.width == 5 and [k for k in bb.state_dict() if k.startswith("proj.")] == [
        "proj.0.conv.weight", "proj.0.conv.bias", "proj.1.conv.weight", "proj.1.conv.bias"]
    with torch.no_grad():
        bb.proj[0].conv.weight.copy_(torch.ones(4, 2, 1))  # each output = x0 + x1
        bb.proj[1].conv.weight.copy_(torch.full((1, 3, 1), 2.0))  # output = 2 (x2 + x3 + x4)
    seen: dict[str, torch.Tensor] = {}

    def capture(_module: torch.nn.Module, args: tuple[torch.Tensor, ...], _out: object) -> None:
        seen["x"] = args[0].clone()

    bb.embd[0].register_forward_hook(capture)
    x = torch.arange(40, dtype=torch.float32).reshape(1, 5, 8)
    mask = torch.ones(1, 1, 8, dtype=torch.bool)
    mask[..., 6:] = False
    bb(x, mask)
    want = torch.cat([(x[:, 0] + x[:, 1]).unsqueeze(1).expand(1, 4, 8), 2 * x[:, 2:].sum(1, keepdim=True)], 1)
    torch.testing.assert_close(seen["x"], want * mask, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["anet_tsp", "anet_i3d", "epic_slowfast_verb", "epic_slowfast_noun", "ego4d_slowfast",
                                  "ego4d_omnivore", "ego4d_egovlp", "ego4d_slowfast_egovlp", "ego4d_omnivore_egovlp",
                                  "ego4d_slowfast_omnivore_egovlp"])
def test_every_shipped_config_builds_and_runs(name: str) -> None:
    from tadformer.config import load_config, packaged_config
    from tadformer.model import build_model

    cfg = load_config(packaged_config(name))
    model = build_model(cfg).eval()
    dim = cfg.dataset.input_dim if isinstance(cfg.dataset.input_dim, int) else sum(cfg.dataset.input_dim)
    t = cfg.model.max_div_factor
    with torch.no_grad():
        out = model(torch.randn(1, dim, t), torch.ones(1, t, dtype=torch.bool))
    assert len(out.cls_logits) == cfg.model.num_levels and out.cls_logits[0].shape == (1, t, cfg.dataset.num_classes)
