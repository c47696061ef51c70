"""The I3D network's structure, weight loading and input checks (no full-network forward passes).

The numerical agreement with the reference lives in ``test_i3d_golden.py``.
"""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from tadformer.video.i3d import (
    ENDPOINTS,
    I3DWeightsError,
    InceptionI3d,
    MaxPool3dSame,
    Unit3D,
    build_i3d,
    load_i3d_weights,
    output_size,
    same_padding,
)
from tadformer.video.i3d_synthetic import GOLDEN_SEEDS, synthetic_i3d_state_dict

# Counts of the README table, per stream: entries, counters, parameter tensors, parameter elements,
# buffer elements, all state-dict elements.
COUNTS = {
    "rgb": (344, 57, 173, 12_697_264, 14_617, 12_711_881),
    "flow": (344, 57, 173, 12_675_312, 14_617, 12_689_929),
}
COUNTER = ".num_batches_tracked"


def reference_layout(golden_dir: Path, stream: str) -> list[tuple[str, list[int]]]:
    lines = (golden_dir / "i3d" / f"state_dict_{stream}.txt").read_text().splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    return [(key, json.loads(shape)) for key, shape in rows]


@pytest.fixture(scope="module")
def rgb_model() -> InceptionI3d:
    return build_i3d("rgb")


@pytest.fixture(scope="module")
def rgb_weights(rgb_model: InceptionI3d) -> dict[str, Tensor]:
    return synthetic_i3d_state_dict(rgb_model, GOLDEN_SEEDS["rgb"])


@pytest.fixture(scope="module")
def flow_weights() -> dict[str, Tensor]:
    return synthetic_i3d_state_dict(build_i3d("flow"), GOLDEN_SEEDS["flow"])


def fresh_rgb() -> InceptionI3d:
    return build_i3d("rgb")


def assert_holds(model: nn.Module, weights: dict[str, Tensor]) -> None:
    """Every entry of the model equals the weights (counters absent from ``weights`` must be 0)."""
    for key, value in model.state_dict().items():
        expected = weights.get(key, torch.zeros((), dtype=torch.int64) if key.endswith(COUNTER) else None)
        assert expected is not None, key
        assert torch.equal(value, expected), key


# ----------------------------------------------------------------------------------------- structure


@pytest.mark.parametrize("stream", ["rgb", "flow"])
def test_state_dict_layout_equals_reference(golden_dir: Path, stream: str) -> None:
    model = build_i3d(stream)
    ours = [(key, list(t.shape)) for key, t in model.state_dict().items()]
    ref = reference_layout(golden_dir, stream)
    assert [k for k, _ in ours] == [k for k, _ in ref]  # same keys in the same order (logits first)
    assert ours == ref
    assert ours[0][0] == "logits.conv3d.weight" and ours[1][0] == "logits.conv3d.bias"


@pytest.mark.parametrize("stream", ["rgb", "flow"])
def test_counts_equal_readme_table(stream: str) -> None:
    model = build_i3d(stream)
    sd = model.state_dict()
    params = list(model.parameters())
    counters = [k for k in sd if k.endswith(COUNTER)]
    assert all(sd[k].dtype == torch.int64 and sd[k].dim() == 0 for k in counters)
    assert all(v.dtype == torch.float32 for k, v in sd.items() if k not in counters)
    got = (len(sd), len(counters), len(params), sum(p.numel() for p in params),
           sum(b.numel() for b in model.buffers()), sum(t.numel() for t in sd.values()))
    assert got == COUNTS[stream]


def test_build_i3d_streams_and_eval_mode() -> None:
    for stream, channels in (("rgb", 3), ("flow", 2)):
        model = build_i3d(stream)
        assert model.in_channels == channels and model.num_classes == 400
        assert not any(m.training for m in model.modules())
        assert model.get_parameter("Conv3d_1a_7x7.conv3d.weight").shape[1] == channels
    for bad in ("RGB", "depth", ""):
        with pytest.raises(ValueError, match="expected 'rgb' or 'flow'"):
            build_i3d(bad)


def test_units_use_reference_settings(rgb_model: InceptionI3d) -> None:
    bns = [m for m in rgb_model.modules() if isinstance(m, nn.BatchNorm3d)]
    assert len(bns) == 57 and all(bn.eps == 1e-3 and bn.momentum == 0.01 for bn in bns)
    convs = [m for m in rgb_model.modules() if isinstance(m, nn.Conv3d)]
    assert len(convs) == 58
    assert all(c.padding == (0, 0, 0) for c in convs)  # padding is SAME, computed per call
    assert [c.bias is not None for c in convs].count(True) == 1  # only the classifier
    assert rgb_model.logits.bn is None
    stem = rgb_model.get_submodule("Conv3d_1a_7x7")
    assert isinstance(stem, Unit3D) and stem.kernel == (7, 7, 7) and stem.stride == (2, 2, 2)
    assert isinstance(rgb_model.get_submodule("MaxPool3d_5a_2x2"), MaxPool3dSame)
    assert [name for name, _ in rgb_model.named_children()][1:17] == list(ENDPOINTS)


# ------------------------------------------------------------------------------------------ padding


def test_same_padding_rule(golden_dir: Path) -> None:
    table = json.loads((golden_dir / "i3d" / "padding_cases.json").read_text())["same_padding_table"]
    assert len(table) > 5
    for row in table:
        front, back = same_padding(row["in"], row["kernel"], row["stride"])
        assert (front, back) == (row["front"], row["back"]), row
        assert front + back == row["pad_total"]
        assert (row["in"] + front + back - row["kernel"]) // row["stride"] + 1 == row["out"]
    # README consequences: stem (2, 3) on even / (3, 3) on odd sizes, stride-2 3x3 pools (0, 1) / (1, 1).
    assert same_padding(224, 7, 2) == (2, 3) and same_padding(193, 7, 2) == (3, 3)
    assert same_padding(112, 3, 2) == (0, 1) and same_padding(97, 3, 2) == (1, 1)
    assert same_padding(56, 3, 1) == (1, 1) and same_padding(56, 1, 1) == (0, 0)


def test_output_size_matches_golden_shapes(golden_dir: Path) -> None:
    cases = json.loads((golden_dir / "i3d" / "forward_cases.json").read_text())["cases"]
    for case in cases.values():
        t, h, w = case["input_shape"][2:]
        assert list(output_size(t, h, w)) == case["extract_features_shape"][2:]


# ------------------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(("shape", "pattern"), [
    ((1, 3, 8, 224, 224), r"9-16 frames of 193-224 x 193-224 pixels.*got T=8, H=224, W=224"),
    ((1, 3, 32, 224, 224), r"9-16 frames.*got T=32.*batch separate 16-frame clips"),
    ((1, 3, 16, 256, 340), r"got T=16, H=256, W=340"),
    ((1, 3, 16, 192, 224), r"got T=16, H=192, W=224"),
    ((1, 3, 16, 224, 160), r"got T=16, H=224, W=160"),
    ((1, 2, 16, 224, 224), r"rgb input must be \(B, 3, T, H, W\), got shape \[1, 2, 16, 224, 224\]"),
    ((3, 16, 224, 224), r"must be \(B, 3, T, H, W\), got shape \[3, 16, 224, 224\]"),
])
def test_clip_features_rejects_other_shapes(rgb_model: InceptionI3d, shape: tuple[int, ...], pattern: str) -> None:
    # Unless the shape check fires first, these inputs would run (or fail deep inside) the network.
    with pytest.raises(ValueError, match=pattern):
        rgb_model.clip_features(torch.zeros(shape))


@pytest.mark.parametrize("shape", [(1, 3, 8, 224, 224), (1, 3, 16, 192, 256), (1, 3, 16, 256, 100)])
def test_too_small_inputs_fail_clearly(rgb_model: InceptionI3d, shape: tuple[int, ...]) -> None:
    for call in (rgb_model.extract_features, rgb_model.forward):
        with pytest.raises(ValueError, match=r"needs T > 8 frames and H, W > 192 pixels"):
            call(torch.zeros(shape))


def test_flow_model_wants_two_channels() -> None:
    with pytest.raises(ValueError, match=r"flow input must be \(B, 2, T, H, W\)"):
        build_i3d("flow").extract_features(torch.zeros(1, 3, 16, 224, 224))


# ----------------------------------------------------------------------------------- weight loading


def test_load_plain_mapping_with_and_without_counters(rgb_weights: dict[str, Tensor]) -> None:
    model = fresh_rgb()
    load_i3d_weights(model, rgb_weights)
    assert_holds(model, rgb_weights)

    bare = {k: v for k, v in rgb_weights.items() if not k.endswith(COUNTER)}
    assert len(bare) == 287 and not hasattr(bare, "_metadata")
    model = fresh_rgb()
    load_i3d_weights(model, bare)
    assert_holds(model, bare)
    assert len(bare) == 287  # the caller's dict is not modified


def test_load_prefix_and_wrapper(rgb_weights: dict[str, Tensor]) -> None:
    prefixed = {f"module.{k}": v for k, v in rgb_weights.items()}
    for source in (prefixed, {"state_dict": prefixed}, {"state_dict": rgb_weights, "epoch": 3}):
        model = fresh_rgb()
        load_i3d_weights(model, source)
        assert_holds(model, rgb_weights)


def test_load_files(tmp_path: Path, rgb_weights: dict[str, Tensor]) -> None:
    # A file saved from a model: OrderedDict with _metadata and counters.
    donor = fresh_rgb()
    donor.load_state_dict(rgb_weights)
    full = tmp_path / "full.pt"
    torch.save(donor.state_dict(), full)
    model = fresh_rgb()
    load_i3d_weights(model, full)
    assert_holds(model, rgb_weights)

    # Counters removed but _metadata kept (version 2): plain load_state_dict(strict=True) would fail.
    sd = donor.state_dict()
    trimmed = collections.OrderedDict((k, v) for k, v in sd.items() if not k.endswith(COUNTER))
    trimmed._metadata = sd._metadata  # type: ignore[attr-defined]
    path = tmp_path / "no_counters_meta.pt"
    torch.save(trimmed, path)
    with pytest.raises(RuntimeError, match="num_batches_tracked"):
        fresh_rgb().load_state_dict(torch.load(path, weights_only=True), strict=True)
    model = fresh_rgb()
    load_i3d_weights(model, str(path))
    assert_holds(model, dict(trimmed))

    # A plain dict without counters and without _metadata, wrapped and DataParallel-prefixed.
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in trimmed.items()}}, path)
    model = fresh_rgb()
    load_i3d_weights(model, path, name="wrapped weights")
    assert_holds(model, dict(trimmed))


def one_line_error(model: InceptionI3d, source: object, **kwargs: str) -> str:
    with pytest.raises(I3DWeightsError) as info:
        load_i3d_weights(model, source, **kwargs)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 600, msg
    return msg


def test_flow_file_into_rgb_model(tmp_path: Path, flow_weights: dict[str, Tensor]) -> None:
    path = tmp_path / "flow_imagenet.pt"
    torch.save(flow_weights, path)
    model = fresh_rgb()
    msg = one_line_error(model, path)
    assert msg == (f"weights {path} do not fit the I3D rgb model (in_channels 3): 1 shape mismatch "
                   "(Conv3d_1a_7x7.conv3d.weight: file [64, 2, 7, 7, 7], model [64, 3, 7, 7, 7])")
    # Nothing was loaded.
    assert not torch.equal(model.state_dict()["logits.conv3d.weight"], flow_weights["logits.conv3d.weight"])


def test_missing_unexpected_and_mismatched_keys(rgb_weights: dict[str, Tensor]) -> None:
    sd = dict(rgb_weights)
    for key in ("logits.conv3d.bias", "Mixed_5c.b3b.bn.running_var", "Mixed_4f.b0.conv3d.weight",
                "Mixed_3b.b1b.bn.weight"):
        del sd[key]
    sd["Mixed_5c.b3a.weight"] = torch.zeros(3)
    sd["logits.conv3d.weight"] = torch.zeros(101, 1024, 1, 1, 1)
    sd["Conv3d_1a_7x7.bn.bias"] = torch.zeros(32)
    msg = one_line_error(fresh_rgb(), sd, name="ucf101.pt")
    assert msg.startswith("weights ucf101.pt do not fit the I3D rgb model (in_channels 3): 4 missing (")
    assert re.search(r"4 missing \(logits\.conv3d\.bias, Mixed_3b\.b1b\.bn\.weight, Mixed_4f\.b0\.conv3d\.weight, "
                     r"\.\.\.\), 1 unexpected \(Mixed_5c\.b3a\.weight\), 2 shape mismatches \("
                     r"logits\.conv3d\.weight: file \[101, 1024, 1, 1, 1\], model \[400, 1024, 1, 1, 1\], "
                     r"Conv3d_1a_7x7\.bn\.bias: file \[32\], model \[64\]\)$", msg), msg
    # The counters alone are never reported missing, but an extra one is unexpected.
    extra = dict(rgb_weights, **{"Mixed_5c.b3b.bn.num_batches_tracked_x": torch.zeros((), dtype=torch.int64)})
    assert "1 unexpected (Mixed_5c.b3b.bn.num_batches_tracked_x)" in one_line_error(fresh_rgb(), extra)


def test_flow_model_names_its_stream(rgb_weights: dict[str, Tensor]) -> None:
    msg = one_line_error(build_i3d("flow"), rgb_weights)
    assert msg.startswith("weights (state dict) do not fit the I3D flow model (in_channels 2): 1 shape mismatch")


def test_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.txt"
    path.write_text("Conv3d_1a_7x7.conv3d.weight 1 2 3\nthis is a text file\n")
    msg = one_line_error(fresh_rgb(), path)
    assert msg.startswith(f"weights {path} could not be read as a PyTorch file (expected a state dict saved "
                          "with torch.save): ")


@pytest.mark.parametrize(("obj", "pattern"), [
    ([torch.zeros(3)], r"hold a list, expected a state dict \(a dict of parameter name -> tensor\)"),
    ({"a": torch.zeros(1), "b": 3, "c": "x"}, r"are not a dict of tensors: 2 entries are not name -> tensor \(b, c\)"),
])
def test_not_a_dict_of_tensors(tmp_path: Path, obj: object, pattern: str) -> None:
    path = tmp_path / "odd.pt"
    torch.save(obj, path)
    msg = one_line_error(fresh_rgb(), path)
    assert re.search(f"^weights {re.escape(str(path))} {pattern}$", msg), msg


def test_missing_path_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "rgb_imagenet.pt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))) as info:
        load_i3d_weights(fresh_rgb(), path)
    assert "\n" not in str(info.value) and "not found" in str(info.value)
    with pytest.raises(OSError, match=f"is a directory.*{re.escape(str(tmp_path))}"):
        load_i3d_weights(fresh_rgb(), str(tmp_path))
