"""Tests of the synthetic ActivityNet / EPIC-Kitchens / Ego4D generators: layout, readers, statistics,
determinism and the ActivityNet external score file."""

from __future__ import annotations

import json
import math
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tadformer.config import load_config, with_empty_classes
from tadformer.data import synthetic_like_stats as st
from tadformer.data.annotations import read_annotations
from tadformer.data.dataset import FeatureDataset
from tadformer.data.rules import kept_after_dedup, rules_for
from tadformer.data.synthetic_like import (
    LikePaths,
    activity_label,
    ext_scores_like,
    generate_like,
    make_database_like,
    num_steps_like,
)
from tadformer.fusion import read_ext_scores

KINDS = ("activitynet", "epic", "ego4d")
ID_PATTERNS = {
    "activitynet": r"[A-Za-z0-9_-]{11}",
    "epic": r"P\d\d_(1\d\d|\d\d)",
    "ego4d": r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
}
DATASET_NAMES = {"activitynet": "anet", "epic": "epic", "ego4d": "ego4d"}
SMALL: dict[str, Any] = {"train_videos": 3, "test_videos": 2}


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LikePaths]:
    """Every kind at its default size (timed: the defaults must be quick to make)."""
    out = {}
    for kind in KINDS:
        start = time.perf_counter()
        out[kind] = generate_like(kind, tmp_path_factory.mktemp(kind))
        assert time.perf_counter() - start < 20.0, kind
    return out


def _db(paths: LikePaths) -> dict[str, Any]:
    with open(paths.json_file) as f:
        return json.load(f)["database"]


def _feats(paths: LikePaths, folder: Path, vid: str) -> np.ndarray:
    spec = st.SPECS[paths.kind]
    path = folder / f"{spec.file_prefix}{vid}{spec.file_ext}"
    if spec.file_ext == ".npz":
        with np.load(path) as archive:
            assert archive.files == ["feats"]
            return archive["feats"]
    return np.load(path)


def _lengths(db: dict[str, Any]) -> np.ndarray:
    return np.array([a["segment"][1] - a["segment"][0] for e in db.values() for a in e["annotations"]])


def _overlap_share(db: dict[str, Any]) -> float:
    """Share of consecutive segments (sorted by start) where the next starts before the previous ends."""
    hits = pairs = 0
    for entry in db.values():
        segs = sorted(a["segment"] for a in entry["annotations"])
        hits += sum(b[0] < a[1] for a, b in zip(segs, segs[1:]))
        pairs += max(len(segs) - 1, 0)
    return hits / pairs


# ---------------------------------------------------------------- layout, readers, config


@pytest.mark.parametrize("kind", KINDS)
def test_official_layout(defaults: dict[str, LikePaths], kind: str) -> None:
    paths, spec = defaults[kind], st.SPECS[kind]
    db = _db(paths)
    assert len(db) == spec.default_train + spec.default_test and list(db) == sorted(db)
    assert [e["subset"] for e in db.values()].count("training") == spec.default_train
    assert paths.feat_folders == tuple(paths.root / d for d in spec.feat_dirs)
    assert all(f.parent == paths.feat_folder or f == paths.feat_folder for f in paths.feat_folders)
    names = st.class_names(kind, "verb")
    for vid, entry in db.items():
        assert re.fullmatch(ID_PATTERNS[kind], vid), vid
        assert entry["subset"] in ("training", "validation") and entry["duration"] > 0 and entry["fps"] > 0
        for ann in entry["annotations"]:
            assert names[ann["label_id"]] == ann["label"]
            assert 0 <= ann["segment"][0] < ann["segment"][1] <= entry["duration"]
    for folder in paths.feat_folders:  # one file per video and nothing else (no temp files left)
        expected = sorted(f"{spec.file_prefix}{vid}{spec.file_ext}" for vid in db)
        assert sorted(p.name for p in folder.iterdir() if p.is_file()) == expected
    assert spec.file_prefix == {"activitynet": "v_", "epic": "", "ego4d": ""}[kind]
    assert spec.file_ext == {"activitynet": ".npy", "epic": ".npz", "ego4d": ".npy"}[kind]
    if kind == "epic":  # a plain zip holding exactly feats.npy
        first = paths.feat_folders[0] / f"{next(iter(db))}.npz"
        assert zipfile.ZipFile(first).namelist() == ["feats.npy"]
    assert (paths.ext_score_file is not None) == (kind == "activitynet")
    assert not [p for p in paths.root.rglob("*") if ".tmp" in p.name]


@pytest.mark.parametrize("kind", KINDS)
def test_config_and_readers(defaults: dict[str, LikePaths], kind: str) -> None:
    paths = defaults[kind]
    cfg = load_config(paths.config_file)
    ds = cfg.dataset
    assert cfg.dataset_name == DATASET_NAMES[kind] and cfg.output_folder == str(paths.root / "ckpt")
    assert Path(ds.json_file or "") == paths.json_file and paths.json_file.is_file()
    folders = (ds.feat_folder,) if isinstance(ds.feat_folder, str) else tuple(ds.feat_folder or ())
    assert tuple(Path(f) for f in folders) == paths.feat_folders and all(Path(f).is_dir() for f in folders)
    expected = {"activitynet": (1, 16, 16, 15.0, 192, True), "epic": (97, 16, 32, 30.0, 2304, False),
                "ego4d": (110, 16, 32, 30.0, 1024, False)}[kind]
    assert (ds.num_classes, ds.feat_stride, ds.num_frames, ds.default_fps, ds.max_seq_len,
            ds.force_upsampling) == expected
    # channels: 128 for one folder; Ego4D's shipped config gives one total for its two folders
    assert ds.input_dim == {"activitynet": 128, "epic": 128, "ego4d": 96}[kind]
    if kind == "activitynet":
        assert cfg.test_cfg.ext_score_file == str(paths.ext_score_file) and Path(cfg.test_cfg.ext_score_file).is_file()
        assert not cfg.test_cfg.multiclass_nms and cfg.test_cfg.voting_thresh == 0.9
    splits = {s: read_annotations(ds.json_file or "", splits=[s], default_fps=ds.default_fps)
              for s in (*cfg.train_split, *cfg.val_split)}
    spec = st.SPECS[kind]
    assert [len(a) for a in splits.values()] == [spec.default_train, spec.default_test]
    assert {v.fps for a in splits.values() for v in a.videos} == {spec.feat_fps}  # default_fps wins


@pytest.mark.parametrize("kind", KINDS)
def test_feature_shapes_follow_the_grid(defaults: dict[str, LikePaths], kind: str) -> None:
    paths, spec = defaults[kind], st.SPECS[kind]
    for vid, entry in _db(paths).items():
        steps = num_steps_like(entry["duration"], spec.feat_fps, spec.feat_stride, spec.num_frames)
        for folder, dim in zip(paths.feat_folders, spec.default_dims):
            feats = _feats(paths, folder, vid)
            assert feats.dtype == np.float32 and feats.shape == (steps, dim), (vid, folder)
            assert np.isfinite(feats).all() and feats.min() >= 0.0
    assert num_steps_like(120.0, 15.0, 16, 16) == math.floor(120.0 * 15 / 16) == 112  # TSP clips
    assert num_steps_like(480.0, 30.0, 16, 32) == 899  # (14400 - 32) / 16 + 1


@pytest.mark.parametrize("kind", KINDS)
def test_feature_dataset_reads_one_video(defaults: dict[str, LikePaths], kind: str) -> None:
    paths = defaults[kind]
    cfg = load_config(paths.config_file)
    rules = rules_for(cfg.dataset_name)
    ann = read_annotations(cfg.dataset.json_file or "", splits=list(cfg.val_split), default_fps=cfg.dataset.default_fps,
                           remove_duplicates=rules.remove_duplicates)
    data = FeatureDataset(ann.videos[:1], cfg.dataset, is_training=False, missing="error", rules=rules)
    sample = data[0]
    vid = ann.videos[0].video_id
    stored = np.concatenate([_feats(paths, f, vid) for f in paths.feat_folders], axis=1)  # [T, sum C_j]
    if kind == "activitynet":  # resized to max_seq_len, class-agnostic labels
        assert tuple(sample.feats.shape) == (128, 192) and set(sample.labels.tolist()) == {0}
    else:  # EPIC read from the .npz, Ego4D folders concatenated along channels
        np.testing.assert_array_equal(sample.feats.numpy(), stored.T)
    train = read_annotations(cfg.dataset.json_file or "", splits=list(cfg.train_split),
                             default_fps=cfg.dataset.default_fps, remove_duplicates=rules.remove_duplicates)
    item = FeatureDataset(train.videos[:2], cfg.dataset, is_training=True, rules=rules)[1]
    assert item.feats.shape[1] <= cfg.dataset.max_seq_len and item.labels.numel() >= 1


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_bytes(tmp_path: Path, kind: str) -> None:
    a = generate_like(kind, tmp_path / "a", seed=7, **SMALL)
    b = generate_like(kind, tmp_path / "b", seed=7, **SMALL)
    c = generate_like(kind, tmp_path / "c", seed=8, **SMALL)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    for rel in files:
        if rel.name == "config.yaml":  # holds the (different) absolute paths
            text_a = (a.root / rel).read_text().replace(str(a.root), "ROOT")
            assert text_a == (b.root / rel).read_text().replace(str(b.root), "ROOT")
        else:
            assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    assert a.json_file.read_bytes() != c.json_file.read_bytes()


def test_video_annotations_independent_of_dataset_size() -> None:
    # ActivityNet: once the 200 classes are covered (>= 200 videos), a video depends on its split and number only
    for kind, (small_n, big_n) in {"activitynet": ((150, 60), (170, 75)), "epic": ((3, 2), (9, 5))}.items():
        small = make_database_like(kind, train_videos=small_n[0], test_videos=small_n[1], seed=4)["database"]
        big = make_database_like(kind, train_videos=big_n[0], test_videos=big_n[1], seed=4)["database"]
        assert all(big[vid] == entry for vid, entry in small.items())


# ---------------------------------------------------------------- statistics


def test_activitynet_statistics(defaults: dict[str, LikePaths]) -> None:
    db = _db(defaults["activitynet"])
    counts = np.array([len(e["annotations"]) for e in db.values()])
    assert 1.2 <= counts.mean() <= 1.9  # real ~1.5 (SE of the mean over 220 videos ~0.07)
    durations = np.array([e["duration"] for e in db.values()])
    assert 60.0 <= np.median(durations) <= 240.0 and durations.max() <= 240.0
    rel = np.array([(a["segment"][1] - a["segment"][0]) / e["duration"] for e in db.values() for a in e["annotations"]])
    assert 0.35 <= (rel >= 1 / 3).mean() <= 0.75  # instances are long
    assert all(len({a["label_id"] for a in e["annotations"]}) == 1 for e in db.values())  # one activity per video
    assert len(read_annotations(defaults["activitynet"].json_file).label_dict) == 200  # every class occurs
    dups = sum(len(e["annotations"]) - len(kept_after_dedup(
        np.array([a["segment"][0] for a in e["annotations"]]), np.array([a["segment"][1] for a in e["annotations"]]),
        np.array([a["label_id"] for a in e["annotations"]]))) for e in db.values())
    assert dups >= 1  # the official duplicate removal has something to do
    full = read_annotations(defaults["activitynet"].json_file)
    dedup = read_annotations(defaults["activitynet"].json_file, remove_duplicates=True)
    assert sum(v.num_segments for v in full.videos) - sum(v.num_segments for v in dedup.videos) == dups


def test_activitynet_ext_scores(defaults: dict[str, LikePaths]) -> None:
    paths = defaults["activitynet"]
    assert paths.ext_score_file is not None
    ext = read_ext_scores(paths.ext_score_file)  # the fusion reader accepts it
    db = _db(paths)
    val = [vid for vid, e in db.items() if e["subset"] == "validation"]
    assert set(val) <= set(ext.scores) and set(ext.scores) == set(db)  # bare ids, no v_ prefix
    assert len(ext.class_names) == 200
    labels = {a["label_id"]: a["label"] for e in db.values() for a in e["annotations"]}
    assert all(ext.class_names[i] == name for i, name in labels.items())  # label ids follow the class list
    assert list(ext.class_names) == sorted(ext.class_names)
    scores = np.stack([ext.scores[v] for v in db])
    assert scores.shape == (len(db), 200) and scores.min() > 0 and np.allclose(scores.sum(axis=1), 1.0)
    truth = np.array([activity_label(e) for e in db.values()])
    acc = float((scores.argmax(axis=1) == truth).mean())
    assert abs(acc - 0.8) <= 4 * math.sqrt(0.8 * 0.2 / len(db))  # 4 binomial SE (~0.11 for 220 videos)
    big = make_database_like("activitynet", train_videos=1500, test_videos=0, seed=2)["database"]
    for target in (0.3, 0.9):
        res = ext_scores_like(big, seed=2, accuracy=target)["results"]
        hits = [int(np.argmax(res[v])) == activity_label(e) for v, e in big.items()]
        assert abs(np.mean(hits) - target) <= 4 * math.sqrt(target * (1 - target) / len(big))


def test_activitynet_small_dataset_still_names_every_class(tmp_path: Path) -> None:
    """With fewer than 200 videos the classes left over become short extra instances, so the fusion and the
    evaluator (which need the annotation to know all 200 score-file classes) still work."""
    paths = generate_like("activitynet", tmp_path, input_dim=8, **SMALL)
    ann = read_annotations(paths.json_file)
    assert len(ann.label_dict) == 200 and len(ann) == 5
    db = _db(paths)
    for entry in db.values():
        main = activity_label(entry)
        main_time = sum(a["segment"][1] - a["segment"][0] for a in entry["annotations"] if a["label_id"] == main)
        others = [a["segment"][1] - a["segment"][0] for a in entry["annotations"] if a["label_id"] != main]
        if entry["subset"] == "training":  # the extras go to the training videos
            assert len(others) >= 60 and main_time > max(others)
        else:
            assert not others
    assert paths.ext_score_file is not None and set(read_ext_scores(paths.ext_score_file).scores) == set(db)


def test_epic_statistics_at_full_scale() -> None:
    """400 full-length videos against the real validation numbers (138 videos, 9,668 segments)."""
    db = make_database_like("epic", train_videos=400, test_videos=0, seed=1, duration_scale=1.0)["database"]
    durations = np.array([e["duration"] for e in db.values()])
    assert durations.min() >= 32.0 and durations.max() <= 1200.0
    assert abs(np.median(durations) / 216.0 - 1) <= 0.2 and abs(durations.mean() / 344.0 - 1) <= 0.15
    counts = np.array([len(e["annotations"]) for e in db.values()])
    assert 28 <= np.median(counts) <= 44 and 50 <= counts.mean() <= 90  # real 35 / 70 (seeds 0-29: 30-40 / 55-73)
    pcts = np.percentile(_lengths(db), list(st.EPIC_REAL_LEN_PCTS_SEC))
    np.testing.assert_allclose(pcts, list(st.EPIC_REAL_LEN_PCTS_SEC.values()), rtol=0.15)
    assert 0.22 <= _overlap_share(db) <= 0.30  # real 26% (thousands of pairs: SE < 0.5%)
    assert {e["fps"] for e in db.values()} == {30.0, 50.0, 60.0, 90.0}


def test_epic_defaults_statistics(defaults: dict[str, LikePaths]) -> None:
    paths = defaults["epic"]
    db = _db(paths)
    quartiles = np.percentile(_lengths(db), [25, 50, 75])
    np.testing.assert_allclose(quartiles, [1.2, 1.96, 3.88], rtol=0.4)  # unchanged by duration_scale
    assert 0.15 <= _overlap_share(db) <= 0.40
    durations = np.array([e["duration"] for e in db.values()])  # scaled by the default 0.5
    assert durations.min() >= 16.0 and durations.max() <= 600.0 and 50 <= np.median(durations) <= 250  # 32 videos
    label_dict = read_annotations(paths.json_file).label_dict
    empty = sorted(set(range(97)) - set(label_dict.values()))
    assert len(empty) >= st.EPIC_EMPTY_CLASSES["verb"]  # at least the never-annotated rarest verbs
    assert with_empty_classes(load_config(paths.config_file), empty).train_cfg.head_empty_cls == tuple(empty)
    assert rules_for("epic").empty_classes


def test_epic_noun_vocabulary(tmp_path: Path) -> None:
    paths = generate_like("epic", tmp_path, vocabulary="noun", input_dim=16, **SMALL)
    cfg = load_config(paths.config_file)
    assert paths.json_file.name == "epic_kitchens_100_noun_synth.json"
    assert cfg.dataset.num_classes == 300 and cfg.dataset.input_dim == 16
    labels = [a["label_id"] for e in _db(paths).values() for a in e["annotations"]]
    assert max(labels) < 300 - st.EPIC_EMPTY_CLASSES["noun"]
    assert all(a["label"].startswith("noun_") for e in _db(paths).values() for a in e["annotations"])


def test_ego4d_statistics(defaults: dict[str, LikePaths], tmp_path: Path) -> None:
    paths = defaults["ego4d"]
    assert len(read_annotations(paths.json_file).label_dict) == 110
    db = _db(paths)
    durations = np.array([e["duration"] for e in db.values()])
    assert durations.max() <= 480.0 and np.median(durations) == 480.0
    counts = np.array([len(e["annotations"]) for e in db.values()])
    assert counts.min() >= 1 and 3 <= np.median(counts) <= 12
    assert 5.0 <= np.median(_lengths(db)) <= 30.0  # short moments in 8-minute clips
    tiny = generate_like("ego4d", tmp_path, train_videos=2, test_videos=1, input_dim=(8, 4))
    assert len(read_annotations(tiny.json_file).label_dict) == 110  # every class used even in 3 clips
    assert load_config(tiny.config_file).dataset.input_dim == 12


# ---------------------------------------------------------------- THUMOS delegation and arguments


def test_thumos_delegates(tmp_path: Path) -> None:
    paths = generate_like("thumos", tmp_path, train_videos=2, test_videos=1, input_dim=8, duration_scale=0.1)
    assert paths.kind == "thumos" and paths.feat_folders == (paths.feat_folder,) and paths.ext_score_file is None
    db = _db(paths)
    assert len(db) == 3 and all(np.load(paths.feat_folder / f"{v}.npy").shape[1] == 8 for v in db)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        generate_like("charades", tmp_path)
    with pytest.raises(ValueError, match="vocabulary must be"):
        generate_like("epic", tmp_path, vocabulary="action")
    with pytest.raises(ValueError, match="one per feature folder"):
        generate_like("ego4d", tmp_path, input_dim=64)
    with pytest.raises(ValueError, match="at least one video"):
        make_database_like("activitynet", train_videos=0, test_videos=0)
    with pytest.raises(ValueError, match="duration_scale"):
        make_database_like("epic", duration_scale=0.0)
    with pytest.raises(ValueError, match="ext_accuracy"):
        generate_like("activitynet", tmp_path, ext_accuracy=1.5, **SMALL)
