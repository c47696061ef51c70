"""FeatureDataset: golden parity with the official THUMOS14 dataset (dataset_cases.json) and behaviour."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format
import pytest
import torch

from tadformer.data.annotations import read_annotations
from tadformer.data.dataset import FeatureDataset
from tadformer.data.features import FeatureError
from tadformer.data.types import VideoRecord
from tadformer.segments import grid_to_sec


@dataclass(frozen=True)
class Cfg:
    """Stand-in for tadformer.config.DatasetConfig (official field names, THUMOS14 values)."""

    feat_folder: str | None
    feat_stride: int = 4
    num_frames: int = 16
    default_fps: float | None = None
    input_dim: int = 2048
    num_classes: int = 20
    downsample_rate: int = 1
    max_seq_len: int = 2304
    trunc_thresh: float = 0.5
    crop_ratio: tuple[float, float] | None = (0.9, 1.0)
    force_upsampling: bool = False
    json_file: str = ""
    file_prefix: str | None = None
    file_ext: str | None = ".npy"


def _write_zero_feats(path: Path, num_steps: int, dim: int) -> None:
    # a sparse all-zero .npy: the header is written and the data region is left as a hole
    npy_format.open_memmap(path, mode="w+", dtype=np.float32, shape=(num_steps, dim)).flush()


def _golden_cases_json(golden: dict, path: Path) -> Path:
    """The golden videos as an annotation file of their own (the golden file holds every field the
    dataset reads), so the parity check does not need the real THUMOS14 file."""
    db = {c["video_id"]: {"subset": c["subset"], "duration": c["duration"], "fps": c["fps"],
                          "annotations": [{"label": n, "label_id": lab, "segment": seg} for n, lab, seg in
                                          zip(c["label_names"], c["labels"], c["segments_sec"])]}
          for c in golden["videos"]}
    path.write_text(json.dumps({"database": db}))
    return path


def test_golden_dataset_cases(golden_dir: Path, tmp_path: Path) -> None:
    _check_golden_dataset_cases(golden_dir, tmp_path, None)


def test_golden_dataset_cases_from_the_real_annotation_file(golden_dir: Path, thumos_json: Path,
                                                            tmp_path: Path) -> None:
    """The same cases read from the real THUMOS14 file (skips without ../shared; never copied here)."""
    _check_golden_dataset_cases(golden_dir, tmp_path, thumos_json)


def _check_golden_dataset_cases(golden_dir: Path, tmp_path: Path, thumos_json: Path | None) -> None:
    golden = json.loads((golden_dir / "dataset_cases.json").read_text())
    assert golden["is_training"] is False
    cases = {v["video_id"]: v for v in golden["videos"]}
    for vid, case in cases.items():
        _write_zero_feats(tmp_path / f"{vid}.npy", case["T"], 2048)
    if thumos_json is not None:
        records = read_annotations(thumos_json, golden["split"]).videos
    else:  # only the subsets the golden videos come from
        subsets = sorted({c["subset"].lower() for c in cases.values()})
        records = read_annotations(_golden_cases_json(golden, tmp_path / "cases.json"), subsets).videos
    cfg_fields = {k: v for k, v in golden["dataset_config"].items() if k != "crop_ratio"}
    dataset = FeatureDataset(records, Cfg(feat_folder=str(tmp_path), **cfg_fields), is_training=False)
    assert [r.video_id for r in dataset.records] == [r.video_id for r in records if r.video_id in cases]
    assert len(dataset.skipped_video_ids) == len(records) - len(cases)
    assert len(dataset.records) == len(cases)
    for index, rec in enumerate(dataset.records):
        case, sample = cases[rec.video_id], dataset[index]
        assert (sample.video_id, rec.subset) == (case["video_id"], case["subset"])
        assert (sample.fps, sample.duration_sec) == (case["fps"], case["duration"])
        assert (sample.feat_stride, sample.feat_num_frames) == (case["feat_stride"], case["feat_num_frames"])
        assert list(sample.feats.shape) == case["feats_shape"] and sample.length == case["T"]
        assert sample.feats.dtype == torch.float32 and sample.feats.is_contiguous()
        assert rec.label_names == tuple(case["label_names"])
        np.testing.assert_array_equal(rec.segments_sec, case["segments_sec"])
        assert sample.labels.dtype == torch.int64 and sample.labels.tolist() == case["labels"]
        assert sample.segments_grid.dtype == torch.float32
        torch.testing.assert_close(
            sample.segments_grid, torch.tensor(case["segments_grid"], dtype=torch.float32), rtol=0, atol=0
        )
        inverse = case["to_seconds"]
        seconds = grid_to_sec(
            torch.tensor(inverse["grid"], dtype=torch.float32),
            sample.fps,
            sample.feat_stride,
            sample.feat_num_frames,
            duration_sec=sample.duration_sec,
        )
        torch.testing.assert_close(
            seconds, torch.tensor(inverse["seconds"], dtype=torch.float32), rtol=0, atol=0
        )
        np.testing.assert_array_equal(np.signbit(seconds.numpy()), np.array(inverse["negative_zero"]))


# ----------------------------------------------------------------------------- synthetic videos


def _record(vid: str, segments_sec: list[list[float]], labels: list[int], fps: float = 30.0) -> VideoRecord:
    return VideoRecord(
        video_id=vid,
        subset="Validation",
        fps=fps,
        duration_sec=100.0,
        segments_sec=np.array(segments_sec, dtype=np.float64).reshape(-1, 2),
        labels=np.array(labels, dtype=np.int64),
        label_names=tuple(f"c{label}" for label in labels),
    )


def _save(folder: Path, name: str, array: np.ndarray) -> None:
    np.save(folder / name, array)


@pytest.fixture()
def cfg(tmp_path: Path) -> Cfg:
    return Cfg(feat_folder=str(tmp_path), input_dim=3, num_classes=4, max_seq_len=8)


def test_eval_item_values(tmp_path: Path, cfg: Cfg) -> None:
    feats = np.arange(30, dtype=np.float64).reshape(10, 3)
    _save(tmp_path, "a.npy", feats)
    sample = FeatureDataset([_record("a", [[0.4, 1.0]], [2])], cfg, is_training=False)[0]
    torch.testing.assert_close(sample.feats, torch.from_numpy(feats.T.astype(np.float32)), rtol=0, atol=0)
    # 0.4 s * 30 / 4 - 2 = 1.0 ; 1.0 s -> 5.5
    assert sample.segments_grid.tolist() == [[1.0, 5.5]] and sample.labels.tolist() == [2]
    assert sample.length == 10  # eval keeps T > max_seq_len


def test_downsample_and_prefix(tmp_path: Path, cfg: Cfg) -> None:
    cfg = dataclasses.replace(cfg, downsample_rate=2, file_prefix="i3d_", default_fps=20.0)
    feats = np.arange(21, dtype=np.float32).reshape(7, 3)
    _save(tmp_path, "i3d_a.npy", feats)
    dataset = FeatureDataset([_record("a", [[0.4, 1.0]], [0])], cfg, is_training=False)
    sample = dataset[0]
    torch.testing.assert_close(sample.feats, torch.from_numpy(feats[::2].T.copy()), rtol=0, atol=0)
    # stride 8, offset 0.5*16/8 = 1; default_fps 20 wins over the record's 30: 0.4*20/8-1 = 0, 1.0 -> 1.5
    assert sample.feat_stride == 8 and dataset.offset_grid == 1.0 and sample.fps == 20.0
    assert sample.segments_grid.tolist() == [[0.0, 1.5]]


def test_missing_features_skip_or_error(tmp_path: Path, cfg: Cfg) -> None:
    _save(tmp_path, "a.npy", np.zeros((4, 3), np.float32))
    records = [_record("a", [[0.0, 1.0]], [0]), _record("b", [[0.0, 1.0]], [0])]
    dataset = FeatureDataset(records, cfg, is_training=False)
    assert len(dataset) == 1 and dataset.skipped_video_ids == ("b",)
    with pytest.raises(FeatureError, match=r"'b'.*b\.npy not found"):
        FeatureDataset(records, cfg, is_training=False, missing="error")


def test_bad_feature_file_is_reported(tmp_path: Path, cfg: Cfg) -> None:
    bad = np.zeros((4, 3), np.float32)
    bad[2, 1] = np.nan
    _save(tmp_path, "a.npy", bad)
    _save(tmp_path, "b.npy", np.zeros((4, 5), np.float32))
    dataset = FeatureDataset([_record("a", [], []), _record("b", [], [])], cfg, is_training=False)
    with pytest.raises(FeatureError, match=r"'a'.*first bad row: 2"):
        dataset[0]
    with pytest.raises(FeatureError, match=r"'b'.*input_dim=3"):
        dataset[1]


def test_label_outside_num_classes(cfg: Cfg) -> None:
    with pytest.raises(ValueError, match=r"'a'.*annotation 1 has label 4.*num_classes=4"):
        FeatureDataset([_record("a", [[0.0, 1.0], [1.0, 2.0]], [0, 4])], cfg, is_training=False)


def test_bad_config(cfg: Cfg) -> None:
    with pytest.raises(ValueError, match="downsample_rate"):
        FeatureDataset([], dataclasses.replace(cfg, downsample_rate=0), is_training=False)
    with pytest.raises(ValueError, match="feat_folder is not set"):
        FeatureDataset([], dataclasses.replace(cfg, feat_folder=None), is_training=False)
    with pytest.raises(ValueError, match="file_ext must be set"):
        FeatureDataset([], dataclasses.replace(cfg, file_ext=None), is_training=False)
    with pytest.raises(ValueError, match=r"input_dim has 3 entries \[3, 1, 1\] but dataset.feat_folder lists 2"):
        FeatureDataset([], dataclasses.replace(cfg, feat_folder=("a", "b"), input_dim=(3, 1, 1)), is_training=False)



def test_training_truncates_long_videos_deterministically(tmp_path: Path, cfg: Cfg) -> None:
    _save(tmp_path, "a.npy", np.arange(60, dtype=np.float32).reshape(20, 3))
    # segments every 0.8 s (6 grid steps) so any window keeps one
    record = _record("a", [[0.8 * k, 0.8 * k + 0.5] for k in range(3)], [0, 1, 2])
    dataset = FeatureDataset([record], cfg, is_training=True, generator=torch.Generator().manual_seed(3))
    again = FeatureDataset([record], cfg, is_training=True, generator=torch.Generator().manual_seed(3))
    for _ in range(5):
        sample, other = dataset[0], again[0]
        assert sample.length == 8 and sample.labels.numel() >= 1
        torch.testing.assert_close(sample.feats, other.feats, rtol=0, atol=0)
        assert bool((sample.segments_grid >= -2.0).all()) and bool((sample.segments_grid <= 10.0).all())


def test_training_crop_ratio_and_no_gt(tmp_path: Path, cfg: Cfg) -> None:
    _save(tmp_path, "a.npy", np.zeros((8, 3), np.float32))
    _save(tmp_path, "b.npy", np.zeros((20, 3), np.float32))
    records = [_record("a", [[0.0, 1.0]], [0]), _record("b", [], [])]
    dataset = FeatureDataset(records, cfg, is_training=True, generator=torch.Generator().manual_seed(0))
    lengths = {dataset[0].length for _ in range(30)}
    assert lengths == {7, 8}  # round(0.9*8)=7 .. 8
    assert dataset[1].length == 20  # no ground truth: never truncated (official)
