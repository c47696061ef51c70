"""The shipped configs for every official ActionFormer benchmark: ActivityNet 1.3, EPIC-Kitchens 100, Ego4D MQ.

Each YAML in ``configs/`` must (1) load, (2) have a byte-identical packaged copy, (3) say in its header
comment where the data goes and which official average mAP to expect, and (4) hold exactly the keys and
values of the official file of the same name in ``happyharrycn/actionformer_release/configs/``. The
official values are written out by hand below (no official file is stored in this repository) and are
never read from our YAMLs.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from tadformer.config import (
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    dump_config,
    load_config,
    packaged_config,
    with_empty_classes,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
PACKAGED_DIR = REPO_ROOT / "src" / "tadformer" / "configs"

# ------------------------------------------------------------------------------ official values, by hand

_ANET_TEST_CFG = {
    "voting_thresh": 0.9, "pre_nms_topk": 2000, "max_seg_num": 100, "min_score": 0.001,
    "multiclass_nms": False, "nms_sigma": 0.75,
    "ext_score_file": "./data/anet_1.3/annotations/cuhk_val_simp_share.json", "duration_thresh": 0.001,
}


def _anet(json_name: str, feat_dir: str, input_dim: int, fps: int) -> dict[str, Any]:
    return {
        "dataset_name": "anet", "train_split": ["training"], "val_split": ["validation"],
        "dataset": {
            "json_file": f"./data/anet_1.3/annotations/{json_name}", "feat_folder": f"./data/anet_1.3/{feat_dir}",
            "file_prefix": "v_", "file_ext": ".npy", "num_classes": 1, "input_dim": input_dim,
            "feat_stride": 16, "num_frames": 16, "default_fps": fps, "trunc_thresh": 0.5,
            "crop_ratio": [0.9, 1.0], "max_seq_len": 192, "force_upsampling": True,
        },
        "model": {
            "fpn_type": "identity", "max_buffer_len_factor": 1.0, "n_mha_win_size": [7, 7, 7, 7, 7, -1],
            "n_head": 4, "embd_dim": 256, "fpn_dim": 256, "head_dim": 256, "use_abs_pe": True,
        },
        "opt": {"learning_rate": 0.001, "epochs": 10, "weight_decay": 0.05},
        "loader": {"batch_size": 16},
        "train_cfg": {
            "init_loss_norm": 200, "clip_grad_l2norm": 1.0, "cls_prior_prob": 0.01, "center_sample": "radius",
            "center_sample_radius": 1.5, "label_smoothing": 0.1, "droppath": 0.1, "loss_weight": 2.0,
        },
        "test_cfg": dict(_ANET_TEST_CFG),
        "output_folder": "./ckpt/",
    }


def _epic(kind: str, num_classes: int, epochs: int, train_extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset_name": "epic", "train_split": ["training"], "val_split": ["validation"],
        "dataset": {
            "json_file": f"./data/epic_kitchens/annotations/epic_kitchens_100_{kind}.json",
            "feat_folder": "./data/epic_kitchens/features", "file_prefix": None, "file_ext": ".npz",
            "num_classes": num_classes, "input_dim": 2304, "feat_stride": 16, "num_frames": 32, "default_fps": 30,
            "trunc_thresh": 0.3, "crop_ratio": [0.9, 1.0], "max_seq_len": 2304,
        },
        "model": {
            "regression_range": [[0, 4], [2, 8], [4, 16], [8, 32], [16, 64], [32, 10000]],
            "fpn_type": "identity", "max_buffer_len_factor": 4.0, "n_mha_win_size": 9,
        },
        "opt": {"learning_rate": 0.0001, "epochs": epochs, "weight_decay": 0.05},
        "loader": {"batch_size": 2},
        "train_cfg": {
            "init_loss_norm": 250, "clip_grad_l2norm": 1.0, "cls_prior_prob": 0.01, "center_sample": "radius",
            "center_sample_radius": 1.5, **train_extra,
        },
        "test_cfg": {"pre_nms_topk": 5000, "max_seg_num": 2000, "min_score": 0.001, "nms_sigma": 0.4,
                     "multiclass_nms": True},
        "output_folder": "./ckpt/",
    }


_EGO_RANGES_7 = [[0, 4], [2, 8], [4, 16], [8, 32], [16, 64], [32, 128], [64, 10000]]
_EGO_RANGES_8 = [[0, 4], [2, 8], [4, 16], [8, 32], [16, 64], [32, 128], [64, 256], [128, 10000]]


def _ego4d(feat_folder: str | list[str], input_dim: int | list[int], num_frames: int, branch: int,
           width: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset_name": "ego4d", "train_split": ["training"], "val_split": ["validation"],
        "dataset": {
            "json_file": "./data/ego4d/annotations/ego4d.json", "feat_folder": feat_folder, "file_prefix": None,
            "file_ext": ".npy", "num_classes": 110, "input_dim": input_dim, "feat_stride": 16,
            "num_frames": num_frames, "default_fps": 30, "trunc_thresh": 0.3, "crop_ratio": [0.9, 1.0],
            "max_seq_len": 1024,
        },
        "model": {
            "regression_range": _EGO_RANGES_7 if branch == 6 else _EGO_RANGES_8, "fpn_type": "identity",
            "backbone_arch": [2, 2, branch], "max_buffer_len_factor": 4.0, "n_mha_win_size": 9, **width,
            "use_abs_pe": True,
        },
        "opt": {"learning_rate": 0.0001, "epochs": 10, "weight_decay": 0.05},
        "loader": {"batch_size": 2},
        "train_cfg": {
            "init_loss_norm": 100, "clip_grad_l2norm": 1.0, "cls_prior_prob": 0.01, "center_sample": "radius",
            "center_sample_radius": 1.5, "dropout": 0.1, "droppath": 0.1,
        },
        "test_cfg": {"pre_nms_topk": 5000, "max_seg_num": 2000, "min_score": 0.001, "nms_sigma": 0.9,
                     "multiclass_nms": True, "voting_thresh": 0.95},
        "output_folder": "./ckpt/",
    }


_SF, _OV, _EV = "./data/ego4d/slowfast_features", "./data/ego4d/omnivore_features", "./data/ego4d/egovlp_features"
_W768 = {"n_head": 12, "embd_dim": 768, "fpn_dim": 768, "head_dim": 768}

# Each official YAML, as yaml.safe_load reads it (key sets included: missing keys take DEFAULTS).
OFFICIAL_RAW: dict[str, dict[str, Any]] = {
    "anet_tsp": _anet("anet1.3_tsp_filtered.json", "tsp_features", 512, 15),
    "anet_i3d": _anet("anet1.3_i3d_filtered.json", "i3d_features", 2048, 25),
    "epic_slowfast_verb": _epic("verb", 97, 16, {}),
    "epic_slowfast_noun": _epic("noun", 300, 16, {"label_smoothing": 0.1}),
    "ego4d_slowfast": _ego4d(_SF, 2304, 32, 6, {}),
    "ego4d_omnivore": _ego4d(_OV, 1536, 32, 7, {}),
    "ego4d_egovlp": _ego4d(_EV, 256, 16, 7, {"embd_dim": 384, "fpn_dim": 384, "head_dim": 384}),
    "ego4d_slowfast_egovlp": _ego4d([_SF, _EV], 2560, 32, 7, _W768),
    "ego4d_omnivore_egovlp": _ego4d([_OV, _EV], 1792, 32, 7, _W768),
    "ego4d_slowfast_omnivore_egovlp": _ego4d(
        [_SF, _OV, _EV], [2304, 1536, 256], 32, 7,
        {"n_head": 16, "embd_dim": [256, 384, 384], "fpn_dim": 1024, "head_dim": 1024}),
}
SHIPPED = sorted(OFFICIAL_RAW)

# Official average mAP (README tables for the released models); each header comment must quote it.
OFFICIAL_MAP = {
    "anet_tsp": "36.56", "anet_i3d": "36.03", "epic_slowfast_verb": "23.51", "epic_slowfast_noun": "21.88",
    "ego4d_slowfast": "14.89", "ego4d_omnivore": "18.20", "ego4d_egovlp": "20.60",
    "ego4d_slowfast_egovlp": "21.56", "ego4d_omnivore_egovlp": "21.98", "ego4d_slowfast_omnivore_egovlp": "22.09",
}


def _load(name: str) -> ExperimentConfig:
    return load_config(CONFIG_DIR / f"{name}.yaml")


# ------------------------------------------------------------------------------ loading and packaging


@pytest.mark.parametrize("name", SHIPPED)
def test_config_loads_and_round_trips(tmp_path: Path, name: str) -> None:
    cfg = _load(name)
    assert load_config(dump_config(cfg, tmp_path / "config.yaml")) == cfg


@pytest.mark.parametrize("name", SHIPPED)
def test_packaged_copy_is_identical(name: str) -> None:
    packaged = packaged_config(name)
    assert packaged == (PACKAGED_DIR / f"{name}.yaml").resolve()
    assert packaged.read_bytes() == (CONFIG_DIR / f"{name}.yaml").read_bytes()


def test_every_config_has_a_packaged_twin() -> None:
    ours = {p.name for p in CONFIG_DIR.glob("*.yaml")}
    packaged = {p.name for p in PACKAGED_DIR.glob("*.yaml")}
    assert ours == packaged
    assert {f"{n}.yaml" for n in SHIPPED} <= ours
    for name in ours:
        assert (CONFIG_DIR / name).read_bytes() == (PACKAGED_DIR / name).read_bytes(), name


@pytest.mark.parametrize("name", SHIPPED)
def test_header_says_where_the_data_goes_and_what_to_expect(name: str) -> None:
    text = (CONFIG_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    header = "".join(lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    assert text.startswith("# ActionFormer on ")
    dataset = OFFICIAL_RAW[name]["dataset"]
    folders = dataset["feat_folder"] if isinstance(dataset["feat_folder"], list) else [dataset["feat_folder"]]
    for path in [dataset["json_file"], *folders]:
        assert path in header, path
    if OFFICIAL_RAW[name]["test_cfg"].get("ext_score_file"):
        assert OFFICIAL_RAW[name]["test_cfg"]["ext_score_file"] in header
    assert f"{OFFICIAL_MAP[name]} average mAP" in header


# ------------------------------------------------------------------------------ equal to the official files


@pytest.mark.parametrize("name", SHIPPED)
def test_same_keys_and_values_as_official_file(name: str) -> None:
    raw = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    assert raw == OFFICIAL_RAW[name]  # same key set, same values (comments and layout are ours)


@pytest.mark.parametrize("name", SHIPPED)
def test_official_values_load_unchanged_and_equal_ours(name: str) -> None:
    official = config_from_dict(OFFICIAL_RAW[name])
    assert official == _load(name)
    # the official train.py/eval.py view (derived copies in `model`) is accepted as well
    raw = copy.deepcopy(OFFICIAL_RAW[name])
    raw["model"].update(input_dim=raw["dataset"]["input_dim"], num_classes=raw["dataset"]["num_classes"],
                        max_seq_len=raw["dataset"]["max_seq_len"], train_cfg=raw["train_cfg"],
                        test_cfg=raw["test_cfg"])
    assert config_from_dict(raw) == official


@pytest.mark.parametrize(("name", "dotted", "value"), [
    ("anet_tsp", "test_cfg.voting_thresh", 0.85),
    ("epic_slowfast_noun", "train_cfg.label_smoothing", 0.0),
    ("ego4d_egovlp", "dataset.num_frames", 32),
    ("ego4d_slowfast_omnivore_egovlp", "model.embd_dim", [384, 384, 256]),
])
def test_a_changed_official_value_is_noticed(name: str, dotted: str, value: Any) -> None:
    raw = copy.deepcopy(OFFICIAL_RAW[name])
    section, key = dotted.split(".")
    raw[section][key] = value
    assert config_from_dict(raw) != _load(name)


def test_older_official_slowfast_omnivore_egovlp_differs() -> None:
    # The Ego4D release commit (ba97112) had 7 levels, embd_dim [384, 384, 256] and an explicit cosine
    # schedule; the current upstream file (shipped here) uses 8 levels and [256, 384, 384]. Both load.
    older = copy.deepcopy(OFFICIAL_RAW["ego4d_slowfast_omnivore_egovlp"])
    older["model"].update(regression_range=_EGO_RANGES_7, backbone_arch=[2, 2, 6], embd_dim=[384, 384, 256])
    older["opt"]["schedule_type"] = "cosine"
    cfg = config_from_dict(older)
    assert cfg.model.num_levels == 7 and cfg.model.max_div_factor == 512
    assert cfg != _load("ego4d_slowfast_omnivore_egovlp")


# ------------------------------------------------------------------------------ spot checks (hand-written)


@pytest.mark.parametrize(("name", "key", "expected"), [
    ("anet_tsp", "dataset_name", "anet"),
    ("anet_tsp", "dataset.max_seq_len", 192),
    ("anet_tsp", "dataset.force_upsampling", True),
    ("anet_tsp", "dataset.file_prefix", "v_"),
    ("anet_tsp", "dataset.default_fps", 15.0),
    ("anet_tsp", "dataset.input_dim", 512),
    ("anet_tsp", "model.n_mha_win_size", (7, 7, 7, 7, 7, -1)),
    ("anet_tsp", "model.use_abs_pe", True),
    ("anet_tsp", "model.embd_dim", 256),
    ("anet_tsp", "train_cfg.label_smoothing", 0.1),
    ("anet_tsp", "train_cfg.loss_weight", 2.0),
    ("anet_tsp", "test_cfg.voting_thresh", 0.9),
    ("anet_tsp", "test_cfg.multiclass_nms", False),
    ("anet_tsp", "test_cfg.nms_sigma", 0.75),
    ("anet_tsp", "test_cfg.duration_thresh", 0.001),
    ("anet_tsp", "test_cfg.ext_score_file", "./data/anet_1.3/annotations/cuhk_val_simp_share.json"),
    ("anet_i3d", "dataset.input_dim", 2048),
    ("anet_i3d", "dataset.default_fps", 25.0),
    ("anet_i3d", "opt.epochs", 10),
    ("epic_slowfast_verb", "dataset.num_classes", 97),
    ("epic_slowfast_noun", "dataset.num_classes", 300),
    ("epic_slowfast_verb", "dataset.file_ext", ".npz"),
    ("epic_slowfast_verb", "dataset.trunc_thresh", 0.3),
    ("epic_slowfast_verb", "model.regression_range",
     ((0, 4), (2, 8), (4, 16), (8, 32), (16, 64), (32, 10000))),
    ("epic_slowfast_verb", "train_cfg.label_smoothing", 0.0),
    ("epic_slowfast_noun", "train_cfg.label_smoothing", 0.1),
    ("epic_slowfast_noun", "test_cfg.nms_sigma", 0.4),
    ("epic_slowfast_noun", "opt.epochs", 16),
    ("ego4d_slowfast", "model.backbone_arch", (2, 2, 6)),
    ("ego4d_omnivore", "model.backbone_arch", (2, 2, 7)),
    ("ego4d_egovlp", "dataset.num_frames", 16),
    ("ego4d_slowfast_egovlp", "model.n_head", 12),
    ("ego4d_slowfast_omnivore_egovlp", "model.n_head", 16),
    ("ego4d_slowfast_omnivore_egovlp", "dataset.input_dim", (2304, 1536, 256)),
    ("ego4d_slowfast_omnivore_egovlp", "model.embd_dim", (256, 384, 384)),
    ("ego4d_slowfast_omnivore_egovlp", "train_cfg.dropout", 0.1),
    ("ego4d_slowfast_omnivore_egovlp", "test_cfg.voting_thresh", 0.95),
])
def test_spot_values(name: str, key: str, expected: Any) -> None:
    got: Any = _load(name)
    for part in key.split("."):
        got = getattr(got, part)
    assert got == expected
    assert type(got) is type(expected)


def test_epic_regression_ranges_overlap() -> None:
    ranges = _load("epic_slowfast_verb").model.regression_range
    # each level starts where the previous one is halfway (in log scale): lo[l+1] = hi[l] / 2
    assert all(ranges[l + 1][0] == ranges[l][1] / 2 for l in range(len(ranges) - 2))
    assert all(ranges[l + 1][0] < ranges[l][1] for l in range(len(ranges) - 1))


@pytest.mark.parametrize(("name", "num_classes"), [("epic_slowfast_verb", 97), ("epic_slowfast_noun", 300)])
def test_epic_empty_classes_are_set_at_training_time(name: str, num_classes: int) -> None:
    cfg = _load(name)
    assert cfg.train_cfg.head_empty_cls == ()  # not in the YAML: filled in from the annotations
    assert with_empty_classes(cfg, [0, num_classes - 1]).train_cfg.head_empty_cls == (0, num_classes - 1)
    with pytest.raises(ConfigError, match=rf"class ids in \[0, {num_classes}\)"):
        with_empty_classes(cfg, [num_classes])


def test_ego4d_multi_feature_inputs() -> None:
    single = {n: _load(f"ego4d_{n}") for n in ("slowfast", "omnivore", "egovlp")}
    for parts in (("slowfast", "egovlp"), ("omnivore", "egovlp")):
        cfg = _load("ego4d_" + "_".join(parts))
        # concatenated features: one folder per feature, input_dim is the total channel count
        assert cfg.dataset.feat_folder == tuple(single[p].dataset.feat_folder for p in parts)
        dims = [single[p].dataset.input_dim for p in parts]
        assert cfg.input_dim == sum(d for d in dims if isinstance(d, int)) and all(isinstance(d, int) for d in dims)
    soe = _load("ego4d_slowfast_omnivore_egovlp")
    assert isinstance(soe.dataset.feat_folder, tuple) and isinstance(soe.input_dim, tuple)
    assert isinstance(soe.model.embd_dim, tuple)
    assert len(soe.dataset.feat_folder) == len(soe.input_dim) == len(soe.model.embd_dim) == 3
    assert soe.dataset.feat_folder == tuple(single[p].dataset.feat_folder for p in ("slowfast", "omnivore", "egovlp"))
    assert soe.input_dim == tuple(single[p].input_dim for p in ("slowfast", "omnivore", "egovlp"))
    assert sum(soe.model.embd_dim) == soe.model.fpn_dim == 1024 and 1024 % soe.model.n_head == 0


# ------------------------------------------------------------------------------ derived quantities

# Computed by hand from the official rule: level l has stride 2**l; a local window w contributes the
# divisor stride * (w // 2) * 2, a global window (-1) just the stride; max_div_factor is the largest.
#   anet:  windows [7]*5 + [-1] -> 6*1, 6*2, 6*4, 6*8, 6*16, then 32 -> max 96; 192 = 2 * 96
#   epic:  window 9 on 6 levels -> 8*(1..32) -> max 256; 2304 = 9 * 256
#   ego4d [2, 2, 6]: window 9 on 7 levels -> 8*(1..64) -> max 512; 1024 = 2 * 512
#   ego4d [2, 2, 7]: window 9 on 8 levels -> 8*(1..128) -> max 1024; 1024 = 1 * 1024
DERIVED: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], int, float]] = {
    # name: (num_levels, fpn_strides, level_divisors, max_div_factor, point buffer = max_seq_len * factor)
    "anet_tsp": (6, (1, 2, 4, 8, 16, 32), (6, 12, 24, 48, 96, 32), 96, 192.0),
    "anet_i3d": (6, (1, 2, 4, 8, 16, 32), (6, 12, 24, 48, 96, 32), 96, 192.0),
    "epic_slowfast_verb": (6, (1, 2, 4, 8, 16, 32), (8, 16, 32, 64, 128, 256), 256, 9216.0),
    "epic_slowfast_noun": (6, (1, 2, 4, 8, 16, 32), (8, 16, 32, 64, 128, 256), 256, 9216.0),
    "ego4d_slowfast": (7, (1, 2, 4, 8, 16, 32, 64), (8, 16, 32, 64, 128, 256, 512), 512, 4096.0),
    "ego4d_omnivore": (8, (1, 2, 4, 8, 16, 32, 64, 128), (8, 16, 32, 64, 128, 256, 512, 1024), 1024, 4096.0),
    "ego4d_egovlp": (8, (1, 2, 4, 8, 16, 32, 64, 128), (8, 16, 32, 64, 128, 256, 512, 1024), 1024, 4096.0),
    "ego4d_slowfast_egovlp": (8, (1, 2, 4, 8, 16, 32, 64, 128), (8, 16, 32, 64, 128, 256, 512, 1024), 1024,
                              4096.0),
    "ego4d_omnivore_egovlp": (8, (1, 2, 4, 8, 16, 32, 64, 128), (8, 16, 32, 64, 128, 256, 512, 1024), 1024,
                              4096.0),
    "ego4d_slowfast_omnivore_egovlp": (8, (1, 2, 4, 8, 16, 32, 64, 128),
                                       (8, 16, 32, 64, 128, 256, 512, 1024), 1024, 4096.0),
}


@pytest.mark.parametrize("name", SHIPPED)
def test_derived_quantities(name: str) -> None:
    levels, strides, divisors, max_div, buffer = DERIVED[name]
    cfg = _load(name)
    m = cfg.model
    assert m.num_levels == levels == len(m.regression_range) == m.backbone_arch[2] + 1
    assert m.fpn_strides == strides
    assert m.level_divisors == divisors
    assert m.max_div_factor == max_div and cfg.max_seq_len % max_div == 0
    assert cfg.max_seq_len * m.max_buffer_len_factor == buffer


def test_ego4d_level_count_must_match_ranges() -> None:
    cfg = _load("ego4d_omnivore")
    with pytest.raises(ConfigError, match="regression_range has 8 entries, expected one per pyramid level: 7"):
        dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, backbone_arch=(2, 2, 6)))
