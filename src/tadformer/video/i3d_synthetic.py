"""Seeded synthetic I3D weights, the recipe of ``tests/golden/i3d/README.md`` reproduced exactly.

The golden I3D outputs were made with these weights instead of the real (large) Kinetics files:
``synthetic_i3d_state_dict(build_i3d("rgb"), 1003)`` and ``synthetic_i3d_state_dict(build_i3d("flow"), 1002)``.
Activations stay of order one through the whole network.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from tadformer.video.i3d import InceptionI3d

GOLDEN_SEEDS: dict[str, int] = {"rgb": 1003, "flow": 1002}


def _map_uniform(key: str, u: Tensor, shape: tuple[int, ...]) -> Tensor:
    """The float64 value of one tensor from its uniform draws ``u`` in [0, 1)."""
    if key == "logits.conv3d.weight":
        return (2 * u - 1) * math.sqrt(3 / math.prod(shape[1:]))
    if key.endswith(".conv3d.weight"):
        return (2 * u - 1) * math.sqrt(2) * math.sqrt(3 / math.prod(shape[1:]))
    if key.endswith(".bn.weight"):
        return 1 + 0.1 * (2 * u - 1)
    if key.endswith((".conv3d.bias", ".bn.bias", ".bn.running_mean")):
        return 0.1 * (2 * u - 1)
    if key.endswith(".bn.running_var"):
        return 1 + 0.1 * u
    raise ValueError(f"no synthetic-weight rule for state-dict entry {key!r}")


def synthetic_i3d_state_dict(model: InceptionI3d, seed: int) -> dict[str, Tensor]:
    """A full state dict for ``model`` drawn from one CPU generator seeded with ``seed``.

    Entries are drawn in state-dict order (``logits.*`` first): ``torch.rand(n, float64)`` per floating
    tensor, mapped per key suffix in float64 and cast to float32; the int64 BatchNorm counters stay 0.
    """
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    out: dict[str, Tensor] = {}
    for key, ref in model.state_dict().items():
        if not ref.is_floating_point():
            out[key] = torch.zeros_like(ref, device="cpu")
            continue
        shape = tuple(ref.shape)
        u = torch.rand(ref.numel(), dtype=torch.float64, generator=g).reshape(shape)
        out[key] = _map_uniform(key, u, shape).to(torch.float32)
    return out


def tensor_bytes(t: Tensor) -> bytes:
    """Little-endian C-order bytes of a CPU copy of ``t``."""
    arr = t.detach().cpu().contiguous().numpy()
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes(order="C")


def state_dict_sha256(sd: Mapping[str, Tensor]) -> str:
    """One sha256 over all entries in order: key (UTF-8), a NUL byte, then the tensor's bytes."""
    h = hashlib.sha256()
    for key, t in sd.items():
        h.update(key.encode("utf-8") + b"\0")
        h.update(tensor_bytes(t))
    return h.hexdigest()
