"""Helpers and fixtures of the video tests (import them explicitly: the test folders are not packages,
so a second ``conftest.py`` would shadow the root one): synthetic videos written with ``write_test_video``.

``moving_shapes(n)`` draws frames whose content is known exactly (a gradient background, a disc and
a square moving a few pixels per frame, the frame number in a corner block), so decoding can be
checked frame by frame. ``make_video`` writes any frames to a file in a temporary folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from tadformer.video.decode import write_test_video

VIDEO_FPS = 30
VIDEO_FRAMES = 53
VIDEO_WH = (320, 180)

MakeVideo = Callable[..., Path]


def moving_shapes(num_frames: int, width: int = VIDEO_WH[0], height: int = VIDEO_WH[1]) -> np.ndarray:
    """uint8 ``(N, H, W, 3)``: a fixed colour gradient, a yellow disc moving right 5 px per frame, a
    cyan square moving down 2 px per frame, and a 16x16 top-left block of grey level ``4 * k``."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.zeros((height, width, 3), dtype=np.uint8)
    base[..., 0] = xx * 255 // max(width - 1, 1)
    base[..., 1] = 64
    base[..., 2] = yy * 255 // max(height - 1, 1)
    frames = np.repeat(base[None], num_frames, axis=0)
    for k in range(num_frames):
        disc = (yy - height // 3) ** 2 + (xx - 20 - 5 * k) ** 2 < 15**2
        frames[k][disc] = (255, 255, 0)
        top = (10 + 2 * k) % max(height - 20, 1)
        frames[k, top:top + 20, width - 60:width - 40] = (0, 200, 255)
        frames[k, :16, :16] = (4 * k) % 256
    return frames


@pytest.fixture(scope="session")
def make_video(tmp_path_factory: pytest.TempPathFactory) -> MakeVideo:
    """``make_video(name, frames, fps=30, **write_test_video_kwargs) -> path`` in a fresh folder."""
    root = tmp_path_factory.mktemp("videos")

    def make(name: str, frames: np.ndarray | Sequence[np.ndarray], fps: float = VIDEO_FPS, **kwargs: object) -> Path:
        path = root / name
        write_test_video(path, frames, fps=fps, **kwargs)  # type: ignore[arg-type]
        return path

    return make


@pytest.fixture(scope="session")
def shapes_frames() -> np.ndarray:
    """The 53 frames of :func:`shapes_video`."""
    return moving_shapes(VIDEO_FRAMES)


@pytest.fixture(scope="session")
def shapes_video(make_video: MakeVideo, shapes_frames: np.ndarray) -> Path:
    """53 frames, 30 fps, 320x180, lossless H.264 (libx264rgb) in MP4."""
    return make_video("shapes.mp4", shapes_frames)
