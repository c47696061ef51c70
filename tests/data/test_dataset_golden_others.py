"""Dataset items of the ActivityNet, EPIC-Kitchens and Ego4D paths equal the official ones
(golden ``datasets/{anet,epic,ego4d}_dataset_cases``).

Each case's annotation file and raw features are written in the dataset's own layout (``v_`` prefixed
``.npy`` files, ``.npz`` archives holding ``feats``, two feature folders), read through tadformer's
:class:`FeatureDataset` with the benchmark's rules, and compared: resized features exactly (torch's
interpolation), segments exactly (float32 in the official order), labels, crop windows. The official
training crops were drawn from Python's ``random``; the recorded draws are injected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tadformer.config import DatasetConfig
from tadformer.data.annotations import read_annotations
from tadformer.data.dataset import FeatureDataset
from tadformer.data.rules import rules_for
from tadformer.data.types import VideoSample


def _case(golden_dir: Path, name: str) -> tuple[dict[str, Any], Any]:
    meta = json.loads((golden_dir / "datasets" / f"{name}_dataset_cases.json").read_text())
    return meta, np.load(golden_dir / "datasets" / f"{name}_dataset_cases.npz")


def _write(tmp: Path, name: str, meta: dict[str, Any], arrays: Any) -> tuple[Path, Any]:
    """The case's annotation json and features on disk; returns (json path, feat_folder value)."""
    ann = tmp / "annotations.json"
    ann.write_text(json.dumps(meta["annotation_json"]))
    if name == "ego4d":
        folders = [tmp / f for f in meta["feature_folders"]]
        for j, folder in enumerate(folders):
            folder.mkdir()
            for key in arrays.files:
                if key.startswith("raw/") and key.endswith(f"/feats_folder{j}"):
                    np.save(folder / f"{key.split('/')[1]}.npy", arrays[key])
        return ann, [str(f) for f in folders]
    folder = tmp / "features"
    folder.mkdir()
    prefix = meta["dataset_config"]["file_prefix"] or ""
    for key in arrays.files:
        if key.startswith("raw/"):
            vid = key.split("/")[1]
            if meta["dataset_config"]["file_ext"] == ".npz":
                np.savez(folder / f"{prefix}{vid}.npz", feats=arrays[key])
            else:
                np.save(folder / f"{prefix}{vid}.npy", arrays[key])
    return ann, str(folder)


def _dataset(tmp: Path, golden_dir: Path, name: str, num_classes: int, training: bool
             ) -> tuple[FeatureDataset, dict[str, Any], Any]:
    meta, arrays = _case(golden_dir, name)
    ann, feat_folder = _write(tmp, name, meta, arrays)
    dc = dict(meta["dataset_config"])
    cfg = DatasetConfig(
        feat_stride=dc["feat_stride"], num_frames=dc["num_frames"], default_fps=dc["default_fps"],
        input_dim=tuple(meta["input_dim"]) if isinstance(meta["input_dim"], list) else meta["input_dim"],
        num_classes=num_classes, downsample_rate=dc["downsample_rate"], max_seq_len=dc["max_seq_len"],
        trunc_thresh=dc["trunc_thresh"], crop_ratio=tuple(dc["crop_ratio"]),
        force_upsampling=bool(dc.get("force_upsampling", False)), json_file=str(ann),
        feat_folder=feat_folder if isinstance(feat_folder, str) else tuple(feat_folder),
        file_prefix=dc["file_prefix"], file_ext=dc["file_ext"])
    rules = rules_for(name)
    split = meta["train_split"] if training else meta["test_split"]
    records = read_annotations(ann, splits=split, default_fps=cfg.default_fps,
                               remove_duplicates=rules.remove_duplicates).videos
    return FeatureDataset(records, cfg, is_training=training, rules=rules), meta, arrays


def _recorded(calls: list[list[int]]):
    """A ``randint`` that replays the official draws, checking each call's range."""
    pending = list(calls)

    def randint(lo: int, hi: int) -> int:
        a, b, value = pending.pop(0)
        assert (lo, hi) == (a, b), f"draw randint({lo}, {hi}), the official code drew randint({a}, {b})"
        return value

    return randint, pending


def _exact(got: torch.Tensor, want: np.ndarray, what: str) -> None:
    np.testing.assert_array_equal(got.numpy(), want, err_msg=what)


CASES = [("anet", 1, "labels"), ("anet", 3, "labels_multiclass"), ("epic", 6, "labels"), ("ego4d", 4, "labels")]


@pytest.mark.parametrize("name, num_classes, label_key", CASES)
def test_test_mode_items(golden_dir: Path, tmp_path: Path, name: str, num_classes: int, label_key: str) -> None:
    dataset, meta, arrays = _dataset(tmp_path, golden_dir, name, num_classes, training=False)
    items = [i for i in meta["items"] if i["mode"] == "test"]
    assert [r.video_id for r in dataset.records] == [i["video_id"] for i in items]  # skipped ones are absent
    for index, item in enumerate(items):
        vid = item["video_id"]
        sample: VideoSample = dataset[index]
        assert sample.feat_stride == item["feat_stride"] and sample.feat_num_frames == item["feat_num_frames"]
        assert sample.fps == item["fps"]
        if f"test/{vid}/feats" in arrays.files:  # ActivityNet: resized features
            _exact(sample.feats, arrays[f"test/{vid}/feats"], f"{vid} feats")
        else:  # the file's features, cast to float32, [C, T]
            raw = [arrays[k] for k in sorted(arrays.files) if k.startswith(f"raw/{vid}/")]
            _exact(sample.feats, np.concatenate(raw, axis=1).astype(np.float32).T, f"{vid} feats")
        if f"test/{vid}/segments" in arrays.files:
            _exact(sample.segments_grid, arrays[f"test/{vid}/segments"], f"{vid} segments")
            _exact(sample.labels, arrays[f"test/{vid}/{label_key}"], f"{vid} labels")
        else:  # no annotations: official None, here empty
            assert sample.segments_grid.shape == (0, 2) and sample.labels.numel() == 0
        if item.get("duration") is not None:
            assert sample.duration_sec == item["duration"]


@pytest.mark.parametrize("name, num_classes, label_key", CASES)
def test_training_items(golden_dir: Path, tmp_path: Path, name: str, num_classes: int, label_key: str) -> None:
    dataset, meta, arrays = _dataset(tmp_path, golden_dir, name, num_classes, training=True)
    index = {r.video_id: i for i, r in enumerate(dataset.records)}
    items = [i for i in meta["items"] if i["mode"] == "train"]
    assert items
    for item in items:
        vid, seed = item["video_id"], item["seed"]
        randint, left = _recorded(item["randint_calls"])
        sample = dataset.load(index[vid], randint=randint)
        assert left == [], f"{vid} seed {seed}: {len(left)} official draws not used"
        key = f"train/{vid}/seed{seed}"
        _exact(sample.segments_grid, arrays[f"{key}/segments"], f"{key} segments")
        _exact(sample.labels, arrays[f"{key}/{label_key}"], f"{key} labels")
        length = item.get("T_out") or sample.length
        assert sample.length == length
        window = item["window"]
        test_feats = (torch.from_numpy(arrays[f"test/{vid}/feats"]) if f"test/{vid}/feats" in arrays.files else
                      torch.from_numpy(np.concatenate([arrays[k] for k in sorted(arrays.files)
                                                       if k.startswith(f"raw/{vid}/")], axis=1).astype(np.float32).T))
        if window is None:
            assert sample.crop_window == (0, test_feats.shape[1])
            _exact(sample.feats, test_feats.numpy(), f"{key} feats")
        else:
            assert sample.crop_window == tuple(window)
            _exact(sample.feats, test_feats[:, window[0]:window[1]].numpy(), f"{key} feats")
        if f"{key}/feats" in arrays.files:
            _exact(sample.feats, arrays[f"{key}/feats"], f"{key} stored feats")


def test_anet_resize_grid_is_the_official_one(golden_dir: Path, tmp_path: Path) -> None:
    """Resized to 192 steps: stride T/12 frames (T features of 16-frame clips every 16 frames), offset 0.5;
    by hand for syn_t037: 16 * 37 / 192 = 3.0833..., and 15 fps * 3.2 s / 3.0833 - 0.5 = 15.068..."""
    dataset, meta, _ = _dataset(tmp_path, golden_dir, "anet", 3, training=False)
    sample = dataset[[r.video_id for r in dataset.records].index("syn_t037")]
    assert sample.feat_stride == 16 * 37 / 192 and sample.feats.shape == (8, 192)
    assert dataset.offset_grid == 0.5
    seg = sample.segments_grid[1].tolist()  # [3.2, 8.9] s, Playing piano
    assert seg[0] == pytest.approx(15 * 3.2 / (16 * 37 / 192) - 0.5, abs=1e-5)


def test_epic_empty_classes_and_ego4d_skips(golden_dir: Path, tmp_path: Path) -> None:
    from tadformer.config import config_from_dict
    from tadformer.engine.batches import empty_class_ids

    meta, _ = _case(golden_dir, "epic")
    ann = tmp_path / "epic.json"
    ann.write_text(json.dumps(meta["annotation_json"]))
    cfg = config_from_dict({"dataset_name": "epic", "dataset": {"json_file": str(ann), "num_classes": 6}})
    assert list(empty_class_ids(cfg)) == meta["empty_label_ids"] == [2, 5]
    (tmp_path / "ego").mkdir()
    dataset, _, _ = _dataset(tmp_path / "ego", golden_dir, "ego4d", 4, training=True)
    assert [v[-3:] for v in dataset.skipped_video_ids] == ["004"]  # its folder-1 file is missing
    assert "004" not in [r.video_id[-3:] for r in dataset.records]
