"""Tests of the synthetic THUMOS14-shaped generator: layout, determinism, statistics, feature realism."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tadformer.data import synthetic_stats as st
from tadformer.data.synthetic import (
    SyntheticPaths,
    generate_dataset,
    make_database,
    num_feature_steps,
    summarize_annotations,
)

TINY: dict[str, Any] = {"train_videos": 5, "test_videos": 5, "input_dim": 32, "duration_scale": 0.2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> SyntheticPaths:
    return generate_dataset(tmp_path_factory.mktemp("tiny"), seed=3, **TINY)


@pytest.fixture(scope="module")
def real_db(thumos_json: Path) -> dict[str, Any]:
    with open(thumos_json) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def full_db() -> dict[str, Any]:
    """Full-size annotations (412 videos), no features: cheap."""
    return make_database(seed=0)


def _load(paths: SyntheticPaths) -> dict[str, Any]:
    with open(paths.json_file) as f:
        return json.load(f)


# ---------------------------------------------------------------- layout


def test_layout_matches_real_file(tiny: SyntheticPaths, real_db: dict[str, Any]) -> None:
    syn = _load(tiny)
    assert list(syn) == list(real_db) == ["version", "database"]
    real_entry = next(iter(real_db["database"].values()))
    real_ann = real_entry["annotations"][0]
    ids = list(syn["database"])
    assert ids == sorted(ids)
    assert ids[:5] == [f"video_test_{i:07d}" for i in range(1, 6)]
    assert ids[5:] == [f"video_validation_{i:07d}" for i in range(1, 6)]
    for vid, entry in syn["database"].items():
        assert list(entry) == list(real_entry), vid
        assert entry["subset"] == ("Validation" if "validation" in vid else "Test")
        assert entry["duration"] == round(entry["duration"], 2)
        assert entry["annotations"], vid
        for ann in entry["annotations"]:
            assert list(ann) == list(real_ann)
            assert st.CLASS_NAMES[ann["label_id"]] == ann["label"]
            s, e = ann["segment"]
            assert s == round(s, 1) and e == round(e, 1) and 0.0 <= s < e
            assert ann["segment(frames)"] == [s * entry["fps"], e * entry["fps"]]


def test_class_table_matches_real(real_db: dict[str, Any]) -> None:
    names = {a["label"]: a["label_id"] for v in real_db["database"].values() for a in v["annotations"]}
    assert names == {n: i for i, n in enumerate(st.CLASS_NAMES)}
    lengths: dict[int, list[float]] = {}
    for v in real_db["database"].values():
        for a in v["annotations"]:
            lengths.setdefault(a["label_id"], []).append(a["segment"][1] - a["segment"][0])
    medians = [float(np.median(lengths[i])) for i in range(st.NUM_CLASSES)]
    np.testing.assert_allclose([f.median_len_sec for f in st.CLASS_FACTS], medians, atol=0.051)
    assert sum(st.PROGRAM_WEIGHTS.values()) == len(real_db["database"])
    fps_total = {f: 0 for f in (30.0, 29.97, 25.0, 24.0)}
    for fps, n in st.FPS_SHORT + st.FPS_LONG:
        fps_total[fps] += n
    assert fps_total == summarize_annotations(real_db)["fps_counts"]


def test_summarize_real_matches_stats_md(real_db: dict[str, Any]) -> None:
    s = summarize_annotations(real_db)  # numbers from shared/data/thumos14/STATS.md
    assert s["videos"] == {"Validation": 200, "Test": 212}
    assert s["segments"] == {"Validation": 3007, "Test": 3358}
    assert s["classes_per_video"] == {1: 351, 2: 60, 3: 1}
    assert s["cliff_in_diving"] == 1.0
    assert s["past_end_segments"] == 30


def test_num_feature_steps_known_real_lengths(real_db: dict[str, Any]) -> None:
    db = real_db["database"]
    for vid, t_real in (("video_validation_0000051", 1269), ("video_test_0000004", 249)):
        assert num_feature_steps(db[vid]["duration"], db[vid]["fps"]) == t_real
    assert num_feature_steps(10.0, 30.0) == 71  # (300 - 16) / 4 = 71.0
    assert num_feature_steps(10.0, 25.0) == 58  # (250 - 16) / 4 = 58.5


def test_features_shape_dtype_nonneg_smooth(tiny: SyntheticPaths) -> None:
    autocorr = []
    for vid, entry in _load(tiny)["database"].items():
        feats = np.load(tiny.feat_folder / f"{vid}.npy")
        assert feats.dtype == np.float32
        assert feats.shape == (num_feature_steps(entry["duration"], entry["fps"]), TINY["input_dim"])
        assert np.isfinite(feats).all() and feats.min() >= 0.0
        centred = feats - feats.mean(axis=0)
        autocorr.append(float((centred[1:] * centred[:-1]).sum() / (centred**2).sum()))
    assert min(autocorr) > 0.7
    expected = sorted(f"{v}.npy" for v in _load(tiny)["database"])
    assert sorted(p.name for p in tiny.feat_folder.iterdir()) == expected
    assert not [p for p in tiny.root.rglob("*") if ".tmp" in p.name]


def test_config_yaml(tiny: SyntheticPaths) -> None:
    with open(tiny.config_file) as f:
        cfg = yaml.safe_load(f)
    assert cfg["dataset_name"] == "thumos"
    assert cfg["train_split"] == ["validation"] and cfg["val_split"] == ["test"]
    ds = cfg["dataset"]
    assert Path(ds["json_file"]) == tiny.json_file and Path(ds["feat_folder"]) == tiny.feat_folder
    assert Path(ds["json_file"]).is_absolute() and Path(ds["feat_folder"]).is_dir()
    assert ds["file_prefix"] is None and ds["file_ext"] == ".npy" and ds["default_fps"] is None
    assert (ds["num_classes"], ds["input_dim"], ds["feat_stride"], ds["num_frames"]) == (20, 32, 4, 16)
    assert (ds["trunc_thresh"], ds["crop_ratio"], ds["max_seq_len"]) == (0.5, [0.9, 1.0], 2304)
    assert cfg["model"] == {"fpn_type": "identity", "max_buffer_len_factor": 6.0, "n_mha_win_size": 19}
    assert cfg["loader"] == {"batch_size": 2}
    assert cfg["train_cfg"]["init_loss_norm"] == 100 and cfg["test_cfg"]["max_seg_num"] == 200


# ---------------------------------------------------------------- determinism


def _file_bytes(paths: SyntheticPaths) -> dict[str, bytes]:
    files = [paths.json_file, *sorted(paths.feat_folder.iterdir())]
    return {p.name: p.read_bytes() for p in files}


def test_determinism(tiny: SyntheticPaths, tmp_path: Path) -> None:
    again = generate_dataset(tmp_path / "again", seed=3, **TINY)
    assert _file_bytes(again) == _file_bytes(tiny)
    other = generate_dataset(tmp_path / "other", seed=4, **TINY)
    assert _load(other) != _load(tiny)
    a = np.load(tiny.feat_folder / "video_test_0000001.npy")
    b = np.load(other.feat_folder / "video_test_0000001.npy")
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_video_content_independent_of_dataset_size(tiny: SyntheticPaths, tmp_path: Path) -> None:
    small = generate_dataset(tmp_path, seed=3, **{**TINY, "train_videos": 2, "test_videos": 1})
    for vid in ("video_validation_0000002", "video_test_0000001"):
        npy = f"{vid}.npy"
        assert (small.feat_folder / npy).read_bytes() == (tiny.feat_folder / npy).read_bytes()
        assert _load(small)["database"][vid] == _load(tiny)["database"][vid]


# ---------------------------------------------------------------- statistics vs the real file


def _close(syn: list[float], real: list[float], rel: float, abs_: float = 0.0) -> None:
    for s, r in zip(syn, real):
        assert abs(s - r) <= rel * r + abs_, (syn, real)


def test_annotation_statistics_match_real(full_db: dict[str, Any], real_db: dict[str, Any]) -> None:
    syn, real = summarize_annotations(full_db), summarize_annotations(real_db)
    assert syn["videos"] == real["videos"]
    _close(syn["length_quartiles_sec"], real["length_quartiles_sec"], rel=0.2)  # p25/p50/p75 within 20 %
    _close(syn["segments_per_video_quartiles"], real["segments_per_video_quartiles"], rel=0.3, abs_=1.0)
    _close(syn["duration_quartiles_sec"], real["duration_quartiles_sec"], rel=0.2)
    for label, median in real["length_median_sec_per_class"].items():
        _close([syn["length_median_sec_per_class"][label]], [median], rel=0.25)
    total = sum(syn["segments"].values())
    assert 0.75 * sum(real["segments"].values()) <= total <= 1.25 * sum(real["segments"].values())
    one_class = syn["classes_per_video"][1] / 412
    assert abs(one_class - real["classes_per_video"][1] / 412) < 0.07
    assert syn["cliff_in_diving"] == real["cliff_in_diving"] == 1.0
    assert 1 <= syn["past_end_segments"] <= 40


def test_fps_mix(full_db: dict[str, Any]) -> None:
    fps = summarize_annotations(full_db)["fps_counts"]
    assert set(fps) <= {30.0, 29.97, 25.0, 24.0}
    assert abs(fps[30.0] / 412 - 381 / 412) < 0.04
    durations = [(v["duration"], v["fps"]) for v in full_db["database"].values()]
    long_non30 = np.mean([f != 30.0 for d, f in durations if d > 300])
    short_non30 = np.mean([f != 30.0 for d, f in durations if d <= 300])
    assert long_non30 > 2 * short_non30  # like the real data: the non-30 fps videos are the long ones
    forced = make_database(train_videos=5, test_videos=5, fps_choices=[25.0])
    assert {v["fps"] for v in forced["database"].values()} == {25.0}


def test_cricket_pairs_overlap(full_db: dict[str, Any]) -> None:
    overlapping = 0
    for entry in full_db["database"].values():
        bowl = [a["segment"] for a in entry["annotations"] if a["label"] == "CricketBowling"]
        shot = [a["segment"] for a in entry["annotations"] if a["label"] == "CricketShot"]
        overlapping += sum(1 for b in bowl for s in shot if s[0] < b[1] and b[0] < s[1])
    assert overlapping >= 50  # the real file has 166 strictly overlapping Bowling/Shot pairs


def test_duration_scale_shortens_videos_keeps_lengths(full_db: dict[str, Any]) -> None:
    short = summarize_annotations(make_database(seed=0, duration_scale=0.25))
    full = summarize_annotations(full_db)
    assert short["duration_quartiles_sec"][1] < 0.4 * full["duration_quartiles_sec"][1]
    assert short["segments_per_video_quartiles"][1] < 0.5 * full["segments_per_video_quartiles"][1]
    _close(short["length_quartiles_sec"], full["length_quartiles_sec"], rel=0.15)
    for entry in make_database(train_videos=20, test_videos=0, duration_scale=0.05)["database"].values():
        assert entry["duration"] >= st.MIN_DURATION_SEC


# ---------------------------------------------------------------- feature signal


def _per_step_data(paths: SyntheticPaths) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Features and per-step labels (-1 = background, else the label of the first GT covering it)."""
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"Validation": [], "Test": []}
    for vid, entry in _load(paths)["database"].items():
        feats = np.load(paths.feat_folder / f"{vid}.npy")
        labels = np.full(len(feats), -1)
        steps_per_sec = entry["fps"] / 4.0
        for ann in entry["annotations"]:
            lo = max(0, math.ceil(ann["segment"][0] * steps_per_sec - 2.0))
            hi = min(len(feats), math.floor(ann["segment"][1] * steps_per_sec - 2.0) + 1)
            labels[lo:hi] = np.where(labels[lo:hi] == -1, ann["label_id"], labels[lo:hi])
        out[entry["subset"]].append((feats, labels))
    return {k: (np.concatenate([f for f, _ in v]), np.concatenate([y for _, y in v])) for k, v in out.items()}


def _ncm_scores(paths: SyntheticPaths) -> tuple[float, float, float]:
    """(nearest-class-mean accuracy inside GT, chance level, foreground/background NCM accuracy)."""
    data = _per_step_data(paths)
    (x_tr, y_tr), (x_te, y_te) = data["Validation"], data["Test"]
    classes = sorted(set(y_tr[y_tr >= 0].tolist()) & set(y_te[y_te >= 0].tolist()))
    means = np.stack([x_tr[y_tr == c].mean(axis=0) for c in classes])
    inside = np.isin(y_te, classes)
    dist = ((x_te[inside, None, :] - means[None]) ** 2).sum(axis=-1)
    acc = float((np.asarray(classes)[dist.argmin(axis=1)] == y_te[inside]).mean())
    fg_mean, bg_mean = x_tr[y_tr >= 0].mean(axis=0), x_tr[y_tr < 0].mean(axis=0)
    pred_fg = ((x_te - fg_mean) ** 2).sum(axis=1) < ((x_te - bg_mean) ** 2).sum(axis=1)
    return acc, 1.0 / len(classes), float((pred_fg == (y_te >= 0)).mean())


@pytest.mark.parametrize("difficulty", ["easy", "thumos"])
def test_features_carry_class_signal(tmp_path: Path, difficulty: str) -> None:
    paths = generate_dataset(tmp_path, train_videos=24, test_videos=24, input_dim=64, seed=0,
                             difficulty=difficulty, duration_scale=0.25)
    acc, chance, fg_acc = _ncm_scores(paths)
    assert acc > 4 * chance
    if difficulty == "easy":
        assert acc > 0.75
    else:  # clearly learnable, but background distractors and blurred boundaries keep it non-trivial
        assert acc < 0.8 and fg_acc < 0.8


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="difficulty"):
        generate_dataset(tmp_path, difficulty="medium")
    with pytest.raises(ValueError, match="input_dim"):
        generate_dataset(tmp_path, input_dim=0)
    with pytest.raises(ValueError, match="at least one video"):
        generate_dataset(tmp_path, train_videos=0, test_videos=0)
    with pytest.raises(ValueError, match="duration_scale"):
        make_database(duration_scale=0.0)
    with pytest.raises(ValueError, match="fps_choices"):
        make_database(fps_choices=[])
    assert not re.search(r"\.npy", " ".join(p.name for p in tmp_path.rglob("*")))
