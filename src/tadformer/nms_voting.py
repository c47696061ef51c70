"""Score voting after class-agnostic NMS (official ``seg_voting``), with each architecture's weights."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = ["VotingWeights", "seg_voting"]

VotingWeights = Literal["score_iou", "score"]


def seg_voting(nms_segs: Tensor, all_segs: Tensor, all_scores: Tensor, iou_thresh: float = 0.7,
               weights_rule: VotingWeights = "score_iou") -> Tensor:
    """Refine kept segments by score voting (official ``seg_voting``, class-agnostic NMS only).

    Each kept segment ``i`` becomes ``sum_j w_ij seg_j / sum_j w_ij`` over ALL candidates ``j`` with
    ``w_ij = [iou_ij >= iou_thresh] * score_j * iou_ij`` (ActionFormer, TemporalMaxer: ``'score_iou'``) or
    ``w_ij = [iou_ij >= iou_thresh] * score_j`` (TriDet: ``'score'``); the IoU here uses plain lengths.

    Args:
        nms_segs: ``[M, 2]`` kept segments.
        all_segs: ``[N, 2]`` all candidates (before NMS).
        all_scores: ``[N]`` their original scores.
        iou_thresh: voting IoU threshold.
        weights_rule: ``'score_iou'`` or ``'score'``.

    Returns:
        ``[M, 2]`` refined segments (float32).
    """
    if weights_rule not in ("score_iou", "score"):
        raise ValueError(f"seg_voting: weights_rule must be 'score_iou' or 'score', got {weights_rule!r}")
    a = nms_segs.to(torch.float32)
    b = all_segs.to(torch.float32)
    left = torch.maximum(a[:, None, 0], b[None, :, 0])
    right = torch.minimum(a[:, None, 1], b[None, :, 1])
    inter = (right - left).clamp(min=0)
    iou = inter / (((a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :]) - inter)
    weights = (iou >= iou_thresh).to(torch.float32) * all_scores.to(torch.float32)[None, :]
    if weights_rule == "score_iou":
        weights = weights * iou
    weights = weights / torch.sum(weights, dim=1, keepdim=True)  # [M, N]
    # The official ``weights @ all_segs`` leaves the summation order to the BLAS kernel of the CPU at
    # hand (AVX-512/AMX kernels differ from AVX2 ones by an ulp). The golden outputs equal a sequential
    # float32 sum over the candidates in input order, which ``np.add.accumulate`` computes exactly
    # (products rounded to float32 first, no FMA) on every CPU.
    products = (weights[:, :, None] * b[None, :, :]).cpu().numpy()  # [M, N, 2] float32
    if products.shape[1] == 0:
        return torch.zeros((a.shape[0], 2), dtype=torch.float32, device=nms_segs.device)
    summed = np.add.accumulate(products, axis=1)[:, -1]  # [M, 2], sequential in j
    return torch.from_numpy(np.ascontiguousarray(summed)).to(nms_segs.device)
