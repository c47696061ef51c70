"""Preprocessing against tests/golden/i3d/preprocess.{json,npz} and clip_grid.json (and OpenCV for grey)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tadformer.video.preprocess import (
    CENTER_CROP,
    CODES_TO_FLOAT32,
    RESIZE_WH,
    clip_input,
    crop,
    crop_boxes,
    flow_codes_to_input,
    num_clips,
    quantise_flow,
    resize_frames,
    scale_codes,
    to_gray,
)


@pytest.fixture(scope="module")
def pre_json(golden_dir: Path) -> dict[str, Any]:
    return json.loads((golden_dir / "i3d" / "preprocess.json").read_text())


@pytest.fixture(scope="module")
def pre_npz(golden_dir: Path) -> dict[str, np.ndarray]:
    with np.load(golden_dir / "i3d" / "preprocess.npz") as z:
        return {k: z[k] for k in z.files}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_num_clips_matches_the_whole_table(golden_dir: Path) -> None:
    grid = json.loads((golden_dir / "i3d" / "clip_grid.json").read_text())
    table = grid["N_T_table"]
    assert len(table) > 60
    for n, t in table:
        assert num_clips(n) == t, n
        assert num_clips(n) == len(range(0, n - 15, 4))
    starts = [[4 * i, 4 * i + 16] for i in range(num_clips(40))]
    assert starts == grid["clips_for_N_40"]
    assert [num_clips(n) for n in (0, 1, 15, 16)] == [0, 0, 0, 1]
    assert num_clips(17, clip_len=17, stride=1) == 1 and num_clips(10, clip_len=4, stride=3) == 3
    with pytest.raises(ValueError):
        num_clips(20, stride=0)


def test_resize_matches_golden(pre_npz: dict[str, np.ndarray], pre_json: dict[str, Any]) -> None:
    frames, golden = pre_npz["rgb/frames_in"], pre_npz["rgb/resized_340x256"]
    out = resize_frames(frames)
    assert out.dtype == np.uint8 and out.shape == golden.shape == (2, 256, 340, 3)
    diff = np.abs(out.astype(np.int16) - golden)
    assert diff.max() <= 1  # the documented tolerance
    identical = float((diff == 0).mean())
    print(f"resize: {100 * identical:.4f} % of pixels identical to the golden resize")
    assert identical == 1.0  # measured: bit-identical (float64, rows then columns, half up)
    assert _sha(out) == pre_json["rgb"]["resized_sha256"]
    np.testing.assert_array_equal(resize_frames(frames[1]), out[1])  # a single (H, W, 3) frame


def test_resize_geometry_and_dtype() -> None:
    ramp = np.tile(np.arange(4, dtype=np.uint8)[None, :, None] * 60, (2, 1, 3))  # 2x4, columns 0 60 120 180
    out = resize_frames(ramp, size_wh=(8, 2))
    # half-pixel centres: src x = (dst + 0.5) / 2 - 0.5 = -0.25 (clamped), 0.25, 0.75, ..., 3.25 (clamped to 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 15, 45, 75, 105, 135, 165, 180])
    same = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_frames(same, size_wh=(7, 5)), same)  # identity size
    with pytest.raises(ValueError, match="uint8"):
        resize_frames(np.zeros((4, 4, 3), np.float32))
    assert RESIZE_WH == (340, 256)


def test_scale_table_is_exact(pre_npz: dict[str, np.ndarray], pre_json: dict[str, Any]) -> None:
    table = pre_npz["scale/codes_to_float32"]
    assert CODES_TO_FLOAT32.dtype == np.float32
    np.testing.assert_array_equal(CODES_TO_FLOAT32, table)
    assert _sha(CODES_TO_FLOAT32) == pre_json["rgb"]["scale_table_sha256"]
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = scale_codes(codes)
    assert out.dtype == np.float32 and out.shape == (16, 16)
    np.testing.assert_array_equal(out.ravel(), (np.arange(256) * 2.0 / 255.0 - 1.0).astype(np.float32))
    assert (out[0, 0], out[-1, -1]) == (-1.0, 1.0)


def test_center_crop_network_input_is_exact(pre_npz: dict[str, np.ndarray], pre_json: dict[str, Any]) -> None:
    resized = pre_npz["rgb/resized_340x256"]
    assert CENTER_CROP == (16, 58) and crop_boxes("center") == [(16, 58, False)]
    assert (pre_json["rgb"]["crop_rows"], pre_json["rgb"]["crop_cols"]) == ([16, 240], [58, 282])
    x = clip_input(resized, crop_boxes("center")[0])
    assert x.dtype == np.float32 and x.shape == (3, 2, 224, 224)
    assert _sha(x) == pre_json["rgb"]["clip_input_sha256"]
    # the same through scale_codes + crop, as a driver would compose them
    y = crop(scale_codes(resized), (16, 58, False)).transpose(3, 0, 1, 2)
    assert _sha(y) == pre_json["rgb"]["clip_input_sha256"]


def test_ten_crop_boxes_follow_preprocess_json(pre_json: dict[str, Any], pre_npz: dict[str, np.ndarray]) -> None:
    five = pre_json["ten_crop"]["crops"]  # [[rows], [cols]] in the frame (then in the flipped frame)
    boxes = crop_boxes("ten")
    assert len(boxes) == 10
    assert boxes[:5] == [(rows[0], cols[0], False) for rows, cols in five]
    assert all(flip for _, _, flip in boxes[5:])
    frame = pre_npz["rgb/resized_340x256"][0]
    flipped = frame[:, ::-1]
    for k, (rows, cols) in enumerate(five):
        np.testing.assert_array_equal(crop(frame, boxes[k]), frame[rows[0]:rows[1], cols[0]:cols[1]])
        # the reference: flip the width axis first, then crop
        np.testing.assert_array_equal(crop(frame, boxes[5 + k]), flipped[rows[0]:rows[1], cols[0]:cols[1]])
    with pytest.raises(ValueError, match="unknown crop 'five': expected one of center, ten"):
        crop_boxes("five")
    with pytest.raises(ValueError, match="does not fit"):
        crop(frame, (40, 0, False))


def test_gray_equals_opencv_on_every_colour() -> None:
    cv2 = pytest.importorskip("cv2")
    legacy_diffs = 0
    for red in range(0, 256, 16):  # all 2**24 colours, 16 red levels at a time (1M pixels each)
        v = np.arange(1 << 20, dtype=np.uint32)
        rgb = np.stack([red + (v >> 16), (v >> 8) & 255, v & 255], axis=-1).astype(np.uint8).reshape(1024, 1024, 3)
        ours = to_gray(rgb)
        ref = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2GRAY)
        assert ours.dtype == np.uint8 and ours.shape == (1024, 1024)
        np.testing.assert_array_equal(ours, ref, err_msg=f"red {red}..{red + 15}")
        # the OpenCV 2.4 table (the reference's dense_flow build) differs on a few colours by one code
        d = to_gray(rgb, variant="opencv2").astype(np.int16) - ref
        assert np.abs(d).max() <= 1
        legacy_diffs += int((d != 0).sum())
    assert 0 < legacy_diffs / (1 << 24) < 0.01
    batch = rgb[:4, :6].reshape(2, 2, 6, 3)
    np.testing.assert_array_equal(to_gray(batch), ours[:4, :6].reshape(2, 2, 6))
    with pytest.raises(ValueError, match="unknown grey variant"):
        to_gray(rgb[:1], variant="opencv3")
    with pytest.raises(ValueError, match="3 channels"):
        to_gray(np.zeros((4, 4, 2), np.uint8))


def test_flow_quantisation_is_exact(pre_npz: dict[str, np.ndarray], pre_json: dict[str, Any]) -> None:
    field = pre_npz["flow/field"]
    codes = quantise_flow(field)
    assert codes.dtype == np.uint8 and codes.shape == field.shape
    np.testing.assert_array_equal(codes, pre_npz["flow/quantised"])
    x = flow_codes_to_input(codes)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x.transpose(3, 0, 1, 2), pre_npz["flow/clip_input"])  # x channel first, then y
    special = pre_npz["flow/special_values"]
    np.testing.assert_array_equal(quantise_flow(special), pre_npz["flow/special_quantised"])
    json_values = np.array([float(v) for v in pre_json["flow"]["special_values"]])  # "inf" strings too
    assert quantise_flow(json_values).tolist() == pre_json["flow"]["special_quantised"]
    half_up = pre_json["flow"]["special_quantised_if_half_up"]
    assert quantise_flow(np.array([-8.0, 8.0])).tolist() == [76, 178] != [half_up[1], half_up[3]]


def test_flow_quantisation_nan_and_integers() -> None:
    assert quantise_flow(np.array([np.nan, -np.nan], np.float32)).tolist() == [128, 128]  # NaN -> zero motion
    assert quantise_flow(np.array([-30, 0, 30])).tolist() == [0, 128, 255]
    with pytest.raises(ValueError, match="float"):
        quantise_flow(np.array(["a"]))
