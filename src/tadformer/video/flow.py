"""Dense optical flow between consecutive grey frames (OpenCV, optional extra ``flow``).

:func:`make_flow` returns a function ``(prev_gray, next_gray) -> flow`` taking two uint8 ``(H, W)``
frames and giving float32 ``(H, W, 2)``: the (x, y) displacement in pixels that carries a pixel of
``prev_gray`` to its position in ``next_gray``. Quantise it with
:func:`tadformer.video.preprocess.quantise_flow`.

Methods (:data:`FLOW_METHODS`):

- ``"tvl1"``: TV-L1 (``cv2.optflow.DualTVL1OpticalFlow``, needs ``opencv-contrib-python-headless``).
  The reference THUMOS14 features used the TSN ``dense_flow`` program, which runs OpenCV 2.4's GPU
  ``OpticalFlowDual_TVL1_GPU`` with its default settings: tau 0.25, lambda 0.15, theta 0.3, 5 scales
  built with ``pyrDown`` (scale step 0.5), 5 warps, epsilon 0.01, at most 300 iterations per warp, no
  median filtering. The CPU class is set as close to that as its parameters allow: the same tau,
  lambda, theta, scales, warps and epsilon, scale step 0.5, 10 outer x 30 inner iterations and
  median filter size 1 (off). The CPU and GPU codes still differ in details (pyramid filter,
  stopping test), so the flow is close to, not equal to, the reference's.
- ``"dis"``: DIS (``cv2.DISOpticalFlow``, preset MEDIUM), in plain OpenCV. Much faster (below), a
  little less accurate; features made with it are not the reference's.

Measured on one core (``cv2.setNumThreads(1)``, OpenCV 5.1), seconds per 340x256 pair:

============================================ ======== ========
frames                                       ``tvl1`` ``dis``
============================================ ======== ========
synthetic shapes on a smooth background       0.19     0.007
blurred-noise texture moving 2 px             0.38     0.007
the shapes + uniform +-3 code pixel noise      1.05     0.008
============================================ ======== ========

TV-L1 stops early when the flow converges, so its cost depends on the content. Real footage, with
sensor and compression noise, is probably nearer the slow end (an estimate: not measured on real
video): about 30 s of CPU per second of 30 fps video. DIS is 25 to 140 times faster. OpenCV's own
TV-L1 defaults, for comparison, take 0.12 / 0.69 / 1.53 s on the same three pairs.

The returned function keeps one OpenCV algorithm object: call it from one thread at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tadformer.video.decode import VideoError

FLOW_METHODS = ("tvl1", "dis")

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

# dense_flow's defaults (OpenCV 2.4 OpticalFlowDual_TVL1_GPU), as far as the CPU class takes them.
TVL1_PARAMS: dict[str, Any] = {
    "tau": 0.25, "lambda_": 0.15, "theta": 0.3, "nscales": 5, "warps": 5, "epsilon": 0.01,
    "innnerIterations": 30, "outerIterations": 10, "scaleStep": 0.5, "gamma": 0.0, "medianFiltering": 1,
}


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise VideoError("optical flow needs OpenCV: pip install 'tadformer[video]'") from exc
    return cv2


def _make_algorithm(cv2: Any, method: str) -> Any:
    if method == "tvl1":
        optflow = getattr(cv2, "optflow", None)
        if optflow is None or not hasattr(optflow, "DualTVL1OpticalFlow_create"):
            raise VideoError("TV-L1 flow needs OpenCV's contrib modules (cv2.optflow): pip install "
                             "opencv-contrib-python-headless (uninstall opencv-python / opencv-python-headless "
                             "first), or use --flow dis")
        return optflow.DualTVL1OpticalFlow_create(**TVL1_PARAMS)
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def make_flow(method: str) -> FlowFn:
    """A flow function ``(prev_gray, next_gray) -> float32 (H, W, 2)`` (x, y) in pixels.

    Args:
        method: ``"tvl1"`` (the reference's algorithm, slow) or ``"dis"`` (fast approximation).

    Raises:
        ValueError: unknown method.
        VideoError: OpenCV missing, or ``tvl1`` asked of an OpenCV build without the contrib modules.
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}: expected one of {', '.join(FLOW_METHODS)}")
    cv2 = _import_cv2()
    algorithm = _make_algorithm(cv2, method)

    def flow(prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
        for name, img in (("prev_gray", prev_gray), ("next_gray", next_gray)):
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 2:
                desc = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
                raise ValueError(f"{method} flow: {name} must be a uint8 (H, W) grey frame, got {desc}")
        if prev_gray.shape != next_gray.shape:
            raise ValueError(f"{method} flow: frames differ in size: {prev_gray.shape} and {next_gray.shape}")
        out = algorithm.calc(np.ascontiguousarray(prev_gray), np.ascontiguousarray(next_gray), None)
        return np.asarray(out, dtype=np.float32).reshape(*prev_gray.shape, 2)

    flow.__name__ = f"{method}_flow"
    return flow
