"""The I3D network against the golden files of the reference port (``tests/golden/i3d/README.md``).

Synthetic weights are checked bitwise, the padding units and pools at 1e-5 absolute, the five full
forward cases at 1e-4 of the largest golden value, and the per-endpoint summaries of sample 0 of the
two batch-of-2 cases at 1e-4 of the largest value of each compared array.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from tadformer.video.i3d import ENDPOINTS, InceptionI3d, MaxPool3dSame, Unit3D, build_i3d, load_i3d_weights
from tadformer.video.i3d_synthetic import GOLDEN_SEEDS, state_dict_sha256, synthetic_i3d_state_dict, tensor_bytes

CASES = ("rgb_b2_t16_224", "flow_b2_t16_224", "rgb_b1_t32_224", "flow_b1_t16_256x340", "rgb_b1_t21_193x255")
BATCH2_CASES = CASES[:2]
REL_TOL = 1e-4


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def relative_error(ours: Tensor | np.ndarray, golden: np.ndarray) -> float:
    """max |ours - golden| / max |golden|."""
    ours_np = ours.detach().cpu().numpy() if isinstance(ours, Tensor) else ours
    assert ours_np.shape == golden.shape
    scale = float(np.abs(golden).max())
    assert scale > 0
    return float(np.abs(ours_np.astype(np.float64) - golden.astype(np.float64)).max()) / scale


def clip_input(shape: list[int], seed: int) -> tuple[Tensor, Tensor]:
    """The README's input recipe: (uint8 codes, float32 x) of shape (B, C, T, H, W)."""
    b, c, t, h, w = shape
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    coarse = torch.randint(0, 256, (b, c, math.ceil(t / 4), math.ceil(h / 28), math.ceil(w / 28)), generator=g)
    noise = torch.randint(-24, 25, (b, c, t, h, w), generator=g)
    blocks = coarse.repeat_interleave(4, dim=2).repeat_interleave(28, dim=3).repeat_interleave(28, dim=4)
    codes = (blocks[:, :, :t, :h, :w] + noise).clamp(0, 255).to(torch.uint8)
    x = (codes.to(torch.float64) * 2 / 255 - 1).to(torch.float32)
    return codes, x


# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def i3d_dir(golden_dir: Path) -> Path:
    return golden_dir / "i3d"


@pytest.fixture(scope="module")
def synthetic() -> dict[str, dict[str, Tensor]]:
    return {s: synthetic_i3d_state_dict(build_i3d(s), GOLDEN_SEEDS[s]) for s in ("rgb", "flow")}


@pytest.fixture(scope="module")
def models(synthetic: dict[str, dict[str, Tensor]]) -> dict[str, InceptionI3d]:
    out = {}
    for stream, weights in synthetic.items():
        model = build_i3d(stream)
        load_i3d_weights(model, weights)
        out[stream] = model
    return out


@pytest.fixture(scope="module")
def forward_golden(i3d_dir: Path) -> Iterator[tuple[dict[str, Any], Any]]:
    meta = json.loads((i3d_dir / "forward_cases.json").read_text())["cases"]
    with np.load(i3d_dir / "forward_cases.npz") as z:
        yield meta, {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def run_case(models: dict[str, InceptionI3d], forward_golden: tuple[dict[str, Any], Any]) -> Callable[[str], dict]:
    """Runs each forward case once (memoised): batch-of-2 cases through ``forward()``, whose pooled
    features are caught by a hook on ``avg_pool``; the others through ``extract_features()``. Hooks
    record every endpoint's output shape and, for sample 0, the summaries of ``endpoints.npz``."""
    meta, _ = forward_golden
    cache: dict[str, dict] = {}

    def run(name: str) -> dict:
        if name in cache:
            return cache[name]
        case = meta[name]
        model = models[case["stream"]]
        codes, x = clip_input(case["input_shape"], case["input_seed"])
        result: dict[str, Any] = {"codes": codes, "x": x, "shapes": {}, "summaries": {}}

        def endpoint_hook(endpoint: str) -> Callable[..., None]:
            def hook(_module: Any, _inputs: Any, out: Tensor) -> None:
                result["shapes"][endpoint] = list(out.shape)
                s0 = out[0]
                result["summaries"][endpoint] = {
                    "spatial_mean": s0.mean(dim=(2, 3)).numpy().copy(),
                    "corner_top_left": s0[:8, :, :2, :2].numpy().copy(),
                    "corner_bottom_right": s0[:8, :, -2:, -2:].numpy().copy(),
                }
            return hook

        handles = [model.get_submodule(e).register_forward_hook(endpoint_hook(e)) for e in ENDPOINTS]
        if case["input_shape"][0] == 2:
            handles.append(model.avg_pool.register_forward_hook(
                lambda _m, _i, out: result.__setitem__("extract_features", out.clone())))
        try:
            with torch.inference_mode():
                if case["input_shape"][0] == 2:
                    result["logits"] = model(x)
                else:
                    result["extract_features"] = model.extract_features(x)
        finally:
            for handle in handles:
                handle.remove()
        cache[name] = result
        return result

    return run


# ------------------------------------------------------------------------------------------ weights


@pytest.mark.parametrize("stream", ["rgb", "flow"])
def test_synthetic_weights_bitwise(i3d_dir: Path, synthetic: dict[str, dict[str, Tensor]], stream: str) -> None:
    golden = json.loads((i3d_dir / "synthetic_weights.json").read_text())["models"][stream]
    weights = synthetic[stream]
    assert [row["key"] for row in golden["tensors"]] == list(weights)
    for row in golden["tensors"]:
        t = weights[row["key"]]
        assert str(t.dtype).removeprefix("torch.") == row["dtype"] and list(t.shape) == row["shape"], row["key"]
        if sha256(tensor_bytes(t)) != row["sha256"]:  # report the first disagreeing tensor
            flat = t.flatten().double()
            pytest.fail(f"first synthetic tensor that differs: {row['key']} (sum {float(flat.sum())} vs "
                        f"{row.get('sum_f64')}, first4 {flat[:4].tolist()} vs {row.get('first4')})")
        if "value" in row:
            assert int(t) == row["value"] == 0
    assert state_dict_sha256(weights) == golden["all_tensors_sha256"]
    assert len(weights) == golden["state_dict_entries"] == 344
    assert sum(t.numel() for t in weights.values()) == golden["state_dict_elements"]


def test_state_dict_sha256_depends_on_order_keys_and_values(synthetic: dict[str, dict[str, Tensor]]) -> None:
    sd = {k: synthetic["rgb"][k] for k in list(synthetic["rgb"])[:4]}
    base = state_dict_sha256(sd)
    assert state_dict_sha256(dict(reversed(sd.items()))) != base
    assert state_dict_sha256({f"x{k}": v for k, v in sd.items()}) != base
    changed = dict(sd, **{"logits.conv3d.bias": sd["logits.conv3d.bias"].clone().add_(1e-6)})
    assert state_dict_sha256(changed) != base


# ------------------------------------------------------------------------------------------ padding


def test_padding_cases(i3d_dir: Path) -> None:
    cases = json.loads((i3d_dir / "padding_cases.json").read_text())["cases"]
    assert len(cases) == 13 and "pool_k333_s222_odd_signed_quirk" in cases
    with np.load(i3d_dir / "padding_cases.npz") as z:
        arrays = {k: z[k] for k in z.files}
    for name, case in cases.items():
        x = torch.from_numpy(arrays[f"{name}/input"])
        assert list(x.shape) == case["input_shape"], name
        module: Unit3D | MaxPool3dSame
        if name.startswith("conv_"):
            module = Unit3D(case["in_channels"], case["out_channels"], tuple(case["kernel"]), tuple(case["stride"]))
            prefix = f"{name}/state_dict/"
            module.load_state_dict({k[len(prefix):]: torch.from_numpy(v) for k, v in arrays.items()
                                    if k.startswith(prefix)}, strict=True)
            module.eval()
        else:
            module = MaxPool3dSame(tuple(case["kernel"]), tuple(case["stride"]))
        with torch.no_grad():
            out = module(x)
        golden = arrays[f"{name}/output"]
        assert list(out.shape) == case["output_shape"] == list(golden.shape), name
        err = float(np.abs(out.numpy() - golden).max())
        assert err <= 1e-5, f"{name}: max abs error {err}"


def test_signed_pool_quirk_is_zero_padding(i3d_dir: Path) -> None:
    """The quirk case tells zero padding from -inf padding: 26 of 144 outputs differ."""
    name = "pool_k333_s222_odd_signed_quirk"
    with np.load(i3d_dir / "padding_cases.npz") as z:
        x, golden = torch.from_numpy(z[f"{name}/input"]), z[f"{name}/output"]
    neg_inf = F.max_pool3d(F.pad(x, (1, 1) * 3, value=-math.inf), 3, 2)
    assert int((neg_inf.numpy() != golden).sum()) == 26 and golden.size == 144
    assert np.array_equal(MaxPool3dSame((3, 3, 3), (2, 2, 2))(x).numpy(), golden)


# ------------------------------------------------------------------------------------- forward cases


@pytest.mark.parametrize("name", CASES)
def test_forward_case_inputs(forward_golden: tuple[dict[str, Any], Any], name: str) -> None:
    meta, arrays = forward_golden
    case = meta[name]
    codes, x = clip_input(case["input_shape"], case["input_seed"])
    assert sha256(codes.numpy().tobytes()) == case["input_codes_sha256"]
    assert sha256(x.numpy().tobytes()) == case["input_float32_sha256"]
    assert np.array_equal(x[0, :, 0, :4, :4].numpy(), arrays[f"{name}/input_first_corner"])
    assert np.array_equal(x[-1, :, -1, -4:, -4:].numpy(), arrays[f"{name}/input_last_corner"])


@pytest.mark.parametrize("name", CASES)
def test_forward_case_outputs(forward_golden: tuple[dict[str, Any], Any], run_case: Callable[[str], dict],
                              name: str) -> None:
    meta, arrays = forward_golden
    case = meta[name]
    result = run_case(name)
    assert sha256(result["x"].numpy().tobytes()) == case["input_float32_sha256"]
    assert result["shapes"] == case["endpoint_shapes"]
    ef = result["extract_features"]
    assert list(ef.shape) == case["extract_features_shape"]
    errors = {"extract_features": relative_error(ef, arrays[f"{name}/extract_features"])}
    if f"{name}/features" in arrays:
        errors["features"] = relative_error(ef[:, :, 0, 0, 0], arrays[f"{name}/features"])
    if f"{name}/logits" in arrays:
        assert list(result["logits"].shape) == case["forward_logits_shape"]
        errors["logits"] = relative_error(result["logits"], arrays[f"{name}/logits"])
    if f"{name}/extract_features_f64" in arrays:
        errors["extract_features_vs_f64"] = relative_error(ef, arrays[f"{name}/extract_features_f64"])
    assert set(errors) >= {"extract_features"} and (case["input_shape"][0] == 1 or len(errors) == 4)
    assert max(errors.values()) <= REL_TOL, errors
    stats = case["feature_stats"]
    assert abs(float(ef.abs().max()) - stats["max_abs"]) <= REL_TOL * stats["max_abs"]


@pytest.mark.parametrize("name", BATCH2_CASES)
def test_endpoint_summaries(i3d_dir: Path, run_case: Callable[[str], dict], name: str) -> None:
    summaries = run_case(name)["summaries"]
    assert list(summaries) == list(ENDPOINTS)
    with np.load(i3d_dir / "endpoints.npz") as z:
        for endpoint in ENDPOINTS:  # network order: the first failure is where a port diverges
            for kind, ours in summaries[endpoint].items():
                golden = z[f"{name}/{endpoint}/{kind}"]
                err = relative_error(ours, golden)
                assert err <= REL_TOL, f"{name}: {endpoint} {kind} differs by {err:.2e} of its scale"


@pytest.mark.parametrize("name", BATCH2_CASES)
def test_clip_features_batch1_equals_batch2(forward_golden: tuple[dict[str, Any], Any],
                                            models: dict[str, InceptionI3d], run_case: Callable[[str], dict],
                                            name: str) -> None:
    meta, arrays = forward_golden
    result = run_case(name)
    with torch.inference_mode():
        alone = models[meta[name]["stream"]].clip_features(result["x"][:1])  # (1, 1024)
    in_batch = result["extract_features"][:1, :, 0, 0, 0]
    assert alone.shape == (1, 1024)
    assert float((alone - in_batch).abs().max()) <= 1e-5 * float(in_batch.abs().max())
    assert relative_error(alone, arrays[f"{name}/features"][:1]) <= REL_TOL
    # The two clips of the batch really differ (hundreds of times the tolerance).
    assert relative_error(result["extract_features"][1, :, 0, 0, 0], arrays[f"{name}/features"][0]) > 100 * REL_TOL
