"""What differs between the official dataset classes, in one place.

The official code has one dataset class per benchmark (``THUMOS14Dataset``, ``ActivityNetDataset``,
``EpicKitchensDataset``, ``Ego4dDataset``); they share almost everything. tadformer has one
:class:`~tadformer.data.dataset.FeatureDataset` and looks up the differences here by
``dataset_name``. Feature containers (``.npy``/``.npz``/HDF5/several folders) are not listed: they
follow from ``dataset.feat_folder`` and ``dataset.file_ext`` (:mod:`tadformer.data.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DatasetRules:
    """Per-benchmark behaviour of the official dataset classes.

    Attributes:
        remove_duplicates: drop annotations shorter than 1e-3 s and repeats of an earlier kept one
            (same label, both ends within 1e-3 s) when the annotations are read (ActivityNet only; the
            evaluator does it for the ground truth of every dataset).
        fix_missing_frames: in training, drop segments that start past the end of the feature grid
            (plus the clip offset) or lie mostly past it, and clamp the others to it (ActivityNet).
        empty_classes: classes without any annotation in the file get the empty-class head bias
            (``train_cfg.head_empty_cls``; EPIC-Kitchens, whose verb/noun vocabularies are long-tailed).
        tiou_thresholds: the evaluation thresholds the official ``eval.py`` uses for the dataset.
    """

    remove_duplicates: bool = False
    fix_missing_frames: bool = False
    empty_classes: bool = False
    tiou_thresholds: tuple[float, ...] = tuple(np.linspace(0.3, 0.7, 5).tolist())


_TIOU_ANET = tuple(np.linspace(0.5, 0.95, 10).tolist())
_TIOU_EGO = tuple(np.linspace(0.1, 0.5, 5).tolist())

RULES: dict[str, DatasetRules] = {
    "thumos": DatasetRules(),
    "anet": DatasetRules(remove_duplicates=True, fix_missing_frames=True, tiou_thresholds=_TIOU_ANET),
    "epic": DatasetRules(empty_classes=True, tiou_thresholds=_TIOU_EGO),
    "ego4d": DatasetRules(tiou_thresholds=_TIOU_EGO),
}


def rules_for(dataset_name: str) -> DatasetRules:
    """The rules of ``dataset_name`` (the official registry names: thumos, anet, epic, ego4d).

    Names that start with one of them (``thumos14``, ``anet_synth``...) get its rules; anything else
    gets the THUMOS14 rules, which are the generic ActivityNet-format behaviour.
    """
    name = dataset_name.lower()
    for key, rules in RULES.items():
        if name.startswith(key):
            return rules
    return RULES["thumos"]


def kept_after_dedup(starts: np.ndarray, ends: np.ndarray, labels: np.ndarray, tol: float = 1e-3) -> list[int]:
    """Indices kept by the official ``remove_duplicate_annotations``: a segment is dropped if it is
    shorter than ``tol`` or if an earlier *kept* one has the same label and both ends within ``tol``."""
    s, e, lab = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64), np.asarray(labels)
    long_enough = (e - s) >= tol
    close = (np.abs(s[:, None] - s[None, :]) <= tol) & (np.abs(e[:, None] - e[None, :]) <= tol)
    close &= (lab[:, None] == lab[None, :]) & np.tri(len(s), k=-1, dtype=bool)  # [i, j]: j earlier than i
    if not close.any():
        return np.flatnonzero(long_enough).tolist()
    kept: list[int] = []
    for i in range(len(s)):
        if long_enough[i] and not any(close[i, j] for j in kept):
            kept.append(i)
    return kept
