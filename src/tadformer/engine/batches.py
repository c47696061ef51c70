"""The order and content of training batches, reproducible and resumable (used by ``engine.train``).

The shuffle of epoch ``e`` comes from a generator seeded by ``(seed, e)`` and the random crop of item
``i`` in epoch ``e`` from one seeded by ``(seed, e, i)``: any process, resumed or not, one of many or
alone, sees exactly the same global batches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tadformer.config import ExperimentConfig
from tadformer.data.annotations import read_annotations
from tadformer.data.collate import collate_train
from tadformer.data.dataset import FeatureDataset
from tadformer.data.rules import rules_for
from tadformer.data.types import Batch, VideoSample
from tadformer.engine.batch_order import Window

__all__ = ["SeededItems", "batch_keys", "build_train_dataset", "complete_class_names", "empty_class_ids",
           "epoch_batches",
           "seed_of", "train_loader", "usable_cpus", "usable_workers", "Key", "Window"]


def seed_of(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across processes and platforms)."""
    return int(np.random.SeedSequence([int(p) % (2**32) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


class SeededItems(Dataset[VideoSample]):
    """Serves ``(epoch, index)`` keys, cropping each item with its own seeded generator."""

    def __init__(self, dataset: FeatureDataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Key) -> VideoSample:  # type: ignore[override]
        """``(epoch, index, crop_window)``: a given window is replayed, not drawn."""
        epoch, index, window = key
        generator = torch.Generator().manual_seed(seed_of(self.seed, epoch, index))
        return self.dataset.load(index, generator, window)


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The shuffled, ``drop_last`` batches of one epoch (deterministic in ``(seed, epoch)``)."""
    gen = torch.Generator().manual_seed(seed_of(seed, epoch, 0x5EED))
    order = torch.randperm(num_items, generator=gen).tolist()
    return [order[i:i + batch_size] for i in range(0, num_items - batch_size + 1, batch_size)]


def build_train_dataset(cfg: ExperimentConfig, world_size: int = 1) -> tuple[FeatureDataset, tuple[str, ...]]:
    """The training dataset of ``cfg.train_split`` and the class names of the annotation file."""
    if not cfg.dataset.json_file:
        raise ValueError("dataset.json_file is not set: point it at the annotation json (ActivityNet format)")
    rules = rules_for(cfg.dataset_name)
    ann = read_annotations(cfg.dataset.json_file, splits=list(cfg.train_split), default_fps=cfg.dataset.default_fps,
                           remove_duplicates=rules.remove_duplicates)
    dataset = FeatureDataset(ann.videos, cfg.dataset, is_training=True, rules=rules)
    if len(dataset) < cfg.loader.batch_size * world_size:
        raise ValueError(
            f"training split {list(cfg.train_split)} of {cfg.dataset.json_file} has {len(dataset)} videos with "
            f"features in {cfg.dataset.feat_folder} ({len(dataset.skipped_video_ids)} without a feature file), "
            f"fewer than loader.batch_size={cfg.loader.batch_size}"
            + (f" x {world_size} processes" if world_size > 1 else "")
        )
    return dataset, complete_class_names(ann.class_names, cfg)


def empty_class_ids(cfg: ExperimentConfig) -> tuple[int, ...]:
    """Class ids in ``[0, num_classes)`` that no annotation of the file uses (any split), for datasets
    whose rules ask for the empty-class head bias (EPIC-Kitchens); ``()`` otherwise."""
    if not rules_for(cfg.dataset_name).empty_classes or cfg.dataset.num_classes == 1 or not cfg.dataset.json_file:
        return ()
    used = set(read_annotations(cfg.dataset.json_file).label_dict.values())
    return tuple(c for c in range(cfg.dataset.num_classes) if c not in used)


def complete_class_names(names: Sequence[str], cfg: ExperimentConfig) -> tuple[str, ...]:
    """One name per class id: the annotation's names, gaps filled (THUMOS14 names, else ``class_<id>``)."""
    from tadformer.data.annotations import thumos14_class_names

    n = cfg.dataset.num_classes
    fallback = thumos14_class_names() if cfg.dataset_name.startswith("thumos") and n == 20 else None
    full = list(names[:n]) + [""] * max(0, n - len(names))
    return tuple(name or (fallback[i] if fallback else f"class_{i}") for i, name in enumerate(full))


Key = tuple[int, int, Window | None]  # (epoch, dataset index, crop window to replay or None to draw)


def batch_keys(batches: Sequence[Sequence[int]], epoch: int,
               windows: Sequence[Sequence[Window | None]] | None = None) -> list[list[Key]]:
    """Loader keys of ``batches`` (dataset indices) in ``epoch``, with recorded crop windows if given."""
    if windows is None:
        return [[(epoch, i, None) for i in b] for b in batches]
    return [[(epoch, i, w) for i, w in zip(b, ws)] for b, ws in zip(batches, windows)]


@dataclass(frozen=True, eq=False)
class _PinnableBatch(Batch):
    """A :class:`Batch` that the DataLoader's pin-memory thread knows how to pin (CUDA training)."""

    def pin_memory(self) -> _PinnableBatch:
        return replace(self, feats=self.feats.pin_memory(), mask=self.mask.pin_memory(),
                       segments_grid=[s.pin_memory() for s in self.segments_grid],
                       labels=[lab.pin_memory() for lab in self.labels])


def _collate_pinnable(samples: Sequence[VideoSample], max_seq_len: int) -> _PinnableBatch:
    b = collate_train(samples, max_seq_len)
    return _PinnableBatch(b.feats, b.mask, b.segments_grid, b.labels, b.metas)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def usable_workers(requested: int) -> int:
    """``min(requested, usable CPUs)``: more loader workers than CPUs only contend (the official
    configs ask for 4, which PyTorch warns about on a 2-core machine)."""
    return min(int(requested), usable_cpus())


def train_loader(items: SeededItems, keys: list[list[Key]], cfg: ExperimentConfig,
                 device: torch.device, num_workers: int | None = None) -> DataLoader:
    """The loader of one epoch's ``keys``; ``num_workers`` defaults to :func:`usable_workers` of the config."""
    return DataLoader(
        items,  # type: ignore[arg-type]
        batch_sampler=keys,  # type: ignore[arg-type]
        collate_fn=partial(_collate_pinnable, max_seq_len=cfg.dataset.max_seq_len),
        num_workers=usable_workers(cfg.loader.num_workers) if num_workers is None else num_workers,
        pin_memory=device.type == "cuda",
        # a private generator: creating the iterator must not consume the global RNG (exact resume)
        generator=torch.Generator().manual_seed(items.seed),
    )
