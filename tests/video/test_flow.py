"""Optical flow: output layout and sign, recovery of a known translation, errors."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from tadformer.video.decode import VideoError
from tadformer.video.flow import FLOW_METHODS, make_flow
from tadformer.video.preprocess import quantise_flow

cv2 = pytest.importorskip("cv2")

SHIFT_XY = (3, -2)  # content moves 3 px right and 2 px up from prev to next


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture (blurred noise, full contrast): every pixel has a usable gradient."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((h, w)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2.0)
    blurred -= blurred.min()
    return np.round(255 * blurred / blurred.max()).astype(np.uint8)


@pytest.fixture(scope="module")
def shifted_pair() -> tuple[np.ndarray, np.ndarray]:
    big = _texture(140, 180)
    dx, dy = SHIFT_XY
    h, w, top, left = 96, 128, 20, 20
    prev = big[top:top + h, left:left + w]
    nxt = big[top - dy:top - dy + h, left - dx:left - dx + w]  # nxt[y, x] = prev[y - dy, x - dx]
    return np.ascontiguousarray(prev), np.ascontiguousarray(nxt)


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_recovers_a_translation(method: str, shifted_pair: tuple[np.ndarray, np.ndarray]) -> None:
    prev, nxt = shifted_pair
    # the point at (x, y) in prev is at (x + 3, y - 2) in next
    assert nxt[50, 60] == prev[50 - SHIFT_XY[1], 60 - SHIFT_XY[0]]
    flow = make_flow(method)(prev, nxt)
    assert flow.dtype == np.float32 and flow.shape == (96, 128, 2)
    inner = flow[16:-16, 16:-16]
    err_x = np.abs(inner[..., 0] - SHIFT_XY[0]).max()
    err_y = np.abs(inner[..., 1] - SHIFT_XY[1]).max()
    assert err_x < 0.5 and err_y < 0.5, (method, err_x, err_y)
    # quantised like dense_flow: 3 px -> round(255 * 23 / 40) = 147, -2 px -> round(255 * 18 / 40) = 115
    codes = quantise_flow(inner)
    assert np.median(codes[..., 0]) == 147 and np.median(codes[..., 1]) == 115


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_static_pair_has_no_motion(method: str, shifted_pair: tuple[np.ndarray, np.ndarray]) -> None:
    prev, _ = shifted_pair
    flow = make_flow(method)(prev, prev.copy())
    assert np.abs(flow).max() < 0.05


def test_bad_inputs_and_unknown_method(shifted_pair: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="unknown flow method 'farneback': expected one of tvl1, dis"):
        make_flow("farneback")
    fn = make_flow("dis")
    prev, nxt = shifted_pair
    with pytest.raises(ValueError, match="uint8"):
        fn(prev.astype(np.float32), nxt)
    with pytest.raises(ValueError, match="differ in size"):
        fn(prev, nxt[:-1])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        fn(np.stack([prev] * 3, -1), np.stack([nxt] * 3, -1))


def test_missing_opencv_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # "import cv2" now raises ImportError
    with pytest.raises(VideoError, match=r"optical flow needs OpenCV: pip install 'tadformer\[video\]'"):
        make_flow("dis")


def test_tvl1_without_contrib_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = types.ModuleType("cv2")  # an OpenCV build without the contrib modules: no cv2.optflow
    monkeypatch.setitem(sys.modules, "cv2", plain)
    with pytest.raises(VideoError, match="opencv-contrib-python-headless") as exc:
        make_flow("tvl1")
    assert "\n" not in str(exc.value)
