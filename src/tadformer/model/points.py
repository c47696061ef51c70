"""Anchor points of the feature pyramid (port of the official ``PointGenerator``).

Point ``i`` of level ``l`` sits at ``t = i * stride_l`` on the level-0 grid (left-aligned,
no half-stride offset) and may regress segments whose ``max(left, right)`` distance lies in
the level's regression range. Points are computed on the fly for the padded length, so
there is no fixed maximum buffer length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Points:
    """Points of all pyramid levels, concatenated in level order (``P = sum_l T_l``).

    Attributes:
        t_grid: ``[P]`` float32 position on the level-0 grid (grid units).
        reg_range: ``[P, 2]`` float32 (lo, hi) of the regression range (grid units, inclusive).
        stride: ``[P]`` float32 stride of the point's level.
        level_lengths: ``T_l`` of every level, so ``sum(level_lengths) == P``.
    """

    t_grid: Tensor
    reg_range: Tensor
    stride: Tensor
    level_lengths: tuple[int, ...]

    def split(self, tensor: Tensor, dim: int = 0) -> list[Tensor]:
        """Split a tensor whose ``dim`` runs over all points back into per-level pieces."""
        return list(torch.split(tensor, list(self.level_lengths), dim=dim))

    def to(self, device: torch.device | str) -> Points:
        """The same points on another device."""
        return Points(self.t_grid.to(device), self.reg_range.to(device), self.stride.to(device),
                      self.level_lengths)


def make_points(
    level_lengths: Sequence[int],
    strides: Sequence[int],
    regression_range: Sequence[tuple[float, float]],
    device: torch.device | str | None = None,
) -> Points:
    """Build the points for a pyramid whose level ``l`` has ``level_lengths[l]`` steps.

    Args:
        level_lengths: ``T_l`` per level (the padded lengths).
        strides: stride of each level in level-0 grid units (1, 2, 4, ...).
        regression_range: (lo, hi) per level in grid units.
        device: where to create the tensors.

    Returns:
        :class:`Points` with ``P = sum(level_lengths)`` rows, in level order.
    """
    if not (len(level_lengths) == len(strides) == len(regression_range)):
        raise ValueError(
            f"make_points: got {len(level_lengths)} level lengths, {len(strides)} strides and "
            f"{len(regression_range)} regression ranges; they must all equal the number of levels"
        )
    ts, ranges, ss = [], [], []
    for length, stride, (lo, hi) in zip(level_lengths, strides, regression_range):
        # float32 like the official buffers: t = i * stride, exact for any realistic length
        ts.append(torch.arange(length, dtype=torch.float32, device=device) * float(stride))
        rng = torch.tensor([float(lo), float(hi)], dtype=torch.float32, device=device)
        ranges.append(rng.expand(length, 2))
        ss.append(torch.full((length,), float(stride), dtype=torch.float32, device=device))
    return Points(torch.cat(ts), torch.cat(ranges), torch.cat(ss), tuple(int(n) for n in level_lengths))
