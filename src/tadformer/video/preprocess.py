"""Frame preprocessing of the reference THUMOS14 I3D pipeline: stretch, scale, crop, grey, flow codes.

Every step follows ``tests/golden/i3d/README.md`` ("preprocess.json and preprocess.npz"):

- :func:`resize_frames` stretches decoded frames to 340x256 (width x height, aspect not kept) with
  bilinear interpolation on half-pixel centres (``align_corners=False``, no antialiasing, edge clamp),
  in float64, rounded half up. It matches the golden resize bit for bit (100 % of the pixels of
  ``rgb/resized_340x256``; the tolerance is one code). ``torch.nn.functional.interpolate`` would give
  99.999 % in float64 and 99.995 % in float32, because it blends the two rows in another order.
  Cost: about 2.5 ms for one 320x180 -> 340x256 frame on one thread.
- :func:`scale_codes` maps uint8 codes to ``x * 2 / 255 - 1`` (float64 arithmetic, then float32)
  through the exact table :data:`CODES_TO_FLOAT32`.
- :func:`crop_boxes` / :func:`crop` give the 224x224 centre crop or the ten crops of the reference.
- :func:`to_gray` is OpenCV's 8-bit ``COLOR_BGR2GRAY`` (as run on the BGR frame) applied to RGB frames.
- :func:`quantise_flow` / :func:`flow_codes_to_input` are dense_flow's flow-to-JPEG quantisation
  (bound 20, round half to even) and its dequantisation.
- :func:`num_clips` counts the 16-frame clips taken every 4 frames.

NumPy and torch only: nothing here needs OpenCV or PyAV.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

RESIZE_WH = (340, 256)
"""Width and height every decoded frame is stretched to."""

CROP_SIZE = 224
CENTER_CROP = (16, 58)
"""(top, left) of the 224x224 centre crop of a 256x340 frame: rows 16:240, columns 58:282."""

CLIP_LEN = 16
CLIP_STRIDE = 4

FLOW_BOUND = 20.0
"""Flow components beyond +-20 px saturate to codes 0 / 255."""

CODES_TO_FLOAT32: np.ndarray = (np.arange(256, dtype=np.float64) * 2.0 / 255.0 - 1.0).astype(np.float32)
"""Network input of each uint8 code: ``x * 2 / 255 - 1`` in float64, cast to float32 (read-only)."""
CODES_TO_FLOAT32.setflags(write=False)

# (top, left) of the reference's five crops of a 256x340 frame: four corners and the centre (preprocess.json).
_FIVE_CROPS = ((0, 0), (0, 116), (16, 58), (32, 0), (32, 116))
CROP_KINDS = ("center", "ten")

# OpenCV's fixed-point weights of 8-bit RGB -> grey: (R, G, B, shift). "opencv4" is what OpenCV 4.x/5.x
# cvtColor computes (RY15, GY15, BY15); "opencv2" is the 14-bit table of OpenCV 2.4 (R2Y, G2Y, B2Y),
# the version the reference dense_flow was built with. The two differ by 1 code on 0.26 % of colours.
GRAY_WEIGHTS = {"opencv4": (9798, 19235, 3735, 15), "opencv2": (4899, 9617, 1868, 14)}


def num_clips(num_frames: int, clip_len: int = CLIP_LEN, stride: int = CLIP_STRIDE) -> int:
    """Clips of ``clip_len`` frames every ``stride`` frames in ``num_frames`` frames.

    ``floor((N - clip_len) / stride) + 1``, 0 when ``N < clip_len``. Clip i covers frames
    ``[stride * i, stride * i + clip_len)``. (The reference extractor also rejects N == clip_len.)
    """
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len and stride must be >= 1, got clip_len={clip_len}, stride={stride}")
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    return 0 if num_frames < clip_len else (num_frames - clip_len) // stride + 1


def _check_uint8(arr: np.ndarray, what: str, ndims: tuple[int, ...], channels: int | None) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8:
        got = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(f"{what}: expected a uint8 array, got {got}")
    if arr.ndim not in ndims or (channels is not None and arr.shape[-1] != channels):
        want = " or ".join(f"{n}-d" for n in ndims)
        chan = f" with {channels} channels last" if channels is not None else ""
        raise ValueError(f"{what}: expected a {want} array{chan}, got shape {arr.shape}")


@functools.lru_cache(maxsize=16)
def _bilinear_taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices i0, i1 and weights (1 - w, w) of half-pixel bilinear sampling, edge clamped."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = src - i0
    return torch.from_numpy(i0), torch.from_numpy(i1), torch.from_numpy(1.0 - w), torch.from_numpy(w)


def resize_frames(frames: np.ndarray, size_wh: tuple[int, int] = RESIZE_WH) -> np.ndarray:
    """Stretch uint8 frames ``(H, W, C)`` or ``(N, H, W, C)`` to ``size_wh`` (width, height).

    Bilinear with half-pixel centres (``src = (dst + 0.5) * in / out - 0.5``, clamped to the image),
    rows blended first then columns, each as ``a * (1 - w) + b * w`` in float64, rounded half up.
    No antialiasing, so downscaling aliases like OpenCV ``INTER_LINEAR``. Returns uint8 ``(..., h, w, C)``.
    """
    _check_uint8(frames, "resize_frames", (3, 4), None)
    out_w, out_h = int(size_wh[0]), int(size_wh[1])
    if out_w < 1 or out_h < 1:
        raise ValueError(f"resize_frames: size must be positive, got {size_wh}")
    batch = frames if frames.ndim == 4 else frames[None]
    n, h, w, c = batch.shape
    if h < 1 or w < 1:
        raise ValueError(f"resize_frames: empty frames of shape {frames.shape}")
    y0, y1, wy0, wy1 = _bilinear_taps(h, out_h)
    x0, x1, wx0, wx1 = _bilinear_taps(w, out_w)
    wy0, wy1 = wy0[:, None, None], wy1[:, None, None]
    wx0, wx1 = wx0[:, None], wx1[:, None]
    out = np.empty((n, out_h, out_w, c), dtype=np.uint8)
    out_t = torch.from_numpy(out)
    for i in range(n):  # one frame at a time keeps the float64 temporaries in cache
        src = batch[i]
        x = torch.from_numpy(src if src.flags.writeable else src.copy()).to(torch.float64)
        rows = x.index_select(0, y0).mul_(wy0).add_(x.index_select(0, y1).mul_(wy1))
        res = rows.index_select(1, x0).mul_(wx0).add_(rows.index_select(1, x1).mul_(wx1))
        out_t[i] = res.add_(0.5).floor_()  # a convex blend of codes stays in [0, 255]
    return out if frames.ndim == 4 else out[0]


def scale_codes(codes: np.ndarray) -> np.ndarray:
    """uint8 codes (any shape) -> float32 ``x * 2 / 255 - 1``, exactly as the reference (table lookup)."""
    _check_uint8(codes, "scale_codes", tuple(range(0, 33)), None)
    return CODES_TO_FLOAT32[codes]


def crop_boxes(kind: str) -> list[tuple[int, int, bool]]:
    """The 224x224 crops of a 256x340 frame as ``(top, left, hflip)``.

    A box means: take rows ``top:top+224`` and columns ``left:left+224`` of the frame, then mirror the
    crop horizontally if ``hflip`` (see :func:`crop`).

    - ``"center"``: ``[(16, 58, False)]``.
    - ``"ten"``: the reference's oversampling. The five crops of ``preprocess.json`` (top-left,
      top-right, centre, bottom-left, bottom-right), then the same five taken from the horizontally
      flipped frame. Cropping the flipped frame at ``left`` is the mirror of the unflipped crop at
      ``340 - 224 - left``, so the flipped corners appear here with left and right swapped; crop k+5
      is exactly the reference's crop k of the flipped frame.
    """
    if kind == "center":
        return [(CENTER_CROP[0], CENTER_CROP[1], False)]
    if kind == "ten":
        width = RESIZE_WH[0]
        plain = [(top, left, False) for top, left in _FIVE_CROPS]
        flipped = [(top, width - CROP_SIZE - left, True) for top, left in _FIVE_CROPS]
        return plain + flipped
    raise ValueError(f"unknown crop {kind!r}: expected one of {', '.join(CROP_KINDS)}")


def crop(frames: np.ndarray, box: tuple[int, int, bool], size: int = CROP_SIZE) -> np.ndarray:
    """The ``size`` x ``size`` crop ``box = (top, left, hflip)`` of frames ``(..., H, W, C)`` (a view)."""
    top, left, hflip = box
    h, w = frames.shape[-3], frames.shape[-2]
    if top < 0 or left < 0 or top + size > h or left + size > w:
        raise ValueError(f"crop box {box} of size {size} does not fit in a {h}x{w} frame")
    out = frames[..., top:top + size, left:left + size, :]
    return out[..., ::-1, :] if hflip else out


def clip_input(codes: np.ndarray, box: tuple[int, int, bool] = (*CENTER_CROP, False),
               size: int = CROP_SIZE) -> np.ndarray:
    """Network input of one clip: uint8 ``(T, H, W, C)`` frames -> float32 ``(C, T, size, size)``.

    Crops with ``box`` (:func:`crop`), scales with :data:`CODES_TO_FLOAT32` and moves channels first.
    Works for RGB codes (C = 3, R, G, B) and flow codes (C = 2, x then y).
    """
    _check_uint8(codes, "clip_input", (4,), None)
    return np.ascontiguousarray(CODES_TO_FLOAT32[crop(codes, box, size)].transpose(3, 0, 1, 2))


def to_gray(frames_rgb: np.ndarray, variant: str = "opencv4") -> np.ndarray:
    """uint8 RGB ``(..., 3)`` -> uint8 grey ``(...)``, OpenCV's ``COLOR_BGR2GRAY`` of the BGR frame.

    Y = 0.299 R + 0.587 G + 0.114 B in OpenCV's 8-bit fixed point:
    ``(R * r + G * g + B * b + 2 ** (s - 1)) >> s``.

    - ``"opencv4"`` (default): r, g, b, s = 9798, 19235, 3735, 15, bit-identical to ``cv2.cvtColor``
      of OpenCV 4.x/5.x (checked on all 2 ** 24 colours).
    - ``"opencv2"``: 4899, 9617, 1868, 14, the table of OpenCV 2.4 used by the reference dense_flow.
      It differs by one code on 0.26 % of colours.
    """
    _check_uint8(frames_rgb, "to_gray", tuple(range(1, 33)), 3)
    try:
        r, g, b, shift = GRAY_WEIGHTS[variant]
    except KeyError:
        raise ValueError(f"unknown grey variant {variant!r}: expected one of {', '.join(GRAY_WEIGHTS)}") from None
    x = frames_rgb.astype(np.int32)
    y = x[..., 0] * r
    y += x[..., 1] * g
    y += x[..., 2] * b
    y += 1 << (shift - 1)
    y >>= shift
    return y.astype(np.uint8)


def quantise_flow(field: np.ndarray) -> np.ndarray:
    """Flow in pixels (float, any shape, e.g. ``(H, W, 2)``) -> uint8 codes, as dense_flow writes them.

    ``v > 20`` -> 255, ``v < -20`` -> 0, else ``round(255 * (v + 20) / 40)`` in float64 with round half
    to even (OpenCV ``cvRound``): ties at -16, -8, 0, 8, 16 give 26, 76, 128, 178, 230. Infinities
    saturate. NaN (no flow estimate) is taken as zero motion and gives 128, the code of 0.
    """
    v = np.asarray(field)
    if not np.issubdtype(v.dtype, np.floating) and not np.issubdtype(v.dtype, np.integer):
        raise ValueError(f"quantise_flow: expected a float array, got {v.dtype}")
    v = v.astype(np.float64)
    v = np.where(np.isnan(v), 0.0, v)
    inner = np.rint(255.0 * (np.clip(v, -FLOW_BOUND, FLOW_BOUND) + FLOW_BOUND) / (2.0 * FLOW_BOUND))
    codes = np.where(v > FLOW_BOUND, 255.0, np.where(v < -FLOW_BOUND, 0.0, inner))
    return codes.astype(np.uint8)


def flow_codes_to_input(codes: np.ndarray) -> np.ndarray:
    """uint8 flow codes (e.g. ``(H, W, 2)``, x then y) -> float32 network input ``x * 2 / 255 - 1``."""
    _check_uint8(codes, "flow_codes_to_input", tuple(range(0, 33)), None)
    return CODES_TO_FLOAT32[codes]
