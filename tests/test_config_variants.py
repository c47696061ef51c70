"""Configs of TriDet and TemporalMaxer: their repositories' YAMLs load unchanged, with their defaults, the
same typed validation and "did you mean" errors; architecture selection and bad input.

The repositories' THUMOS14 I3D files are written out by hand below (no file of theirs is stored here).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from tadformer.config import (
    ConfigError,
    ModelConfig,
    TemporalMaxerModelConfig,
    TriDetModelConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    packaged_config,
)
from tadformer.config_arch import ARCHITECTURES, arch_info, guess_architecture
from tadformer.engine.optim import build_optimizer, build_scheduler
from tadformer.model import TemporalMaxer, TriDet, build_model
from variants_golden import VARIANTS

REPO_ROOT = Path(__file__).resolve().parents[1]
RANGES = [[0, 4], [4, 8], [8, 16], [16, 32], [32, 64], [64, 10000]]
_DATASET = {
    "json_file": "./data/thumos/annotations/thumos14.json", "feat_folder": "./data/thumos/i3d_features",
    "file_prefix": None, "file_ext": ".npy", "num_classes": 20, "input_dim": 2048, "feat_stride": 4,
    "num_frames": 16, "trunc_thresh": 0.5, "crop_ratio": [0.9, 1.0], "max_seq_len": 2304,
}
# dingfengshi/TriDet configs/thumos_i3d.yaml (no model_name: TriDet's loader defaults to it)
TRIDET_THUMOS: dict[str, Any] = {
    "dataset_name": "thumos", "train_split": ["validation"], "val_split": ["test"], "dataset": dict(_DATASET),
    "model": {"fpn_type": "identity", "max_buffer_len_factor": 6.0, "backbone_arch": [2, 2, 5], "n_sgp_win_size": 1,
              "regression_range": RANGES, "num_bins": 16, "k": 5, "iou_weight_power": 0.2, "use_trident_head": True,
              "sgp_mlp_dim": 768, "input_noise": 0.0005},
    "opt": {"learning_rate": 0.0001, "warmup_epochs": 20, "epochs": 20, "weight_decay": 0.025},
    "loader": {"batch_size": 2},
    "train_cfg": {"init_loss_norm": 100, "clip_grad_l2norm": 1.0, "cls_prior_prob": 0.01, "center_sample": "radius",
                  "center_sample_radius": 1.5},
    "test_cfg": {"voting_thresh": 0.7, "pre_nms_topk": 2000, "max_seg_num": 2000, "min_score": 0.001,
                 "multiclass_nms": True},
    "output_folder": "./ckpt/",
}
# TuanTNG/TemporalMaxer configs/temporalmaxer_thumos_i3d.yaml
TEMPORALMAXER_THUMOS: dict[str, Any] = {
    "model_name": "TemporalMaxerArchitecture", "dataset_name": "thumos", "train_split": ["validation"],
    "val_split": ["test"], "dataset": dict(_DATASET),
    "model": {"backbone_type": "convPooler", "backbone_arch": [2, 5], "fpn_type": "identity",
              "max_buffer_len_factor": 6.0,
              "assigner": {"iou_weight": 2, "cls_weight": 1.0, "center_radius": 1.5, "keep_percent": 1.0,
                           "confuse_weight": 0.0}},
    "opt": {"learning_rate": 0.0001, "epochs": 60, "weight_decay": 0.05},
    "loader": {"batch_size": 2},
    "train_cfg": {"init_loss_norm": 100, "clip_grad_l2norm": 1.0, "cls_prior_prob": 0.01, "center_sample": "none"},
    "test_cfg": {"voting_thresh": 0.7, "pre_nms_topk": 2000, "max_seg_num": 200, "min_score": 0.001,
                 "multiclass_nms": True},
    "output_folder": "./ckpt",
}
SHIPPED = {"thumos_i3d_tridet": TRIDET_THUMOS, "thumos_i3d_temporalmaxer": TEMPORALMAXER_THUMOS}


def _write(tmp_path: Path, raw: dict[str, Any], name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ shipped configs


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_config_equals_the_repository_file(tmp_path: Path, name: str) -> None:
    ours = load_config(REPO_ROOT / "configs" / f"{name}.yaml")
    official = config_from_dict(SHIPPED[name])  # their unchanged file
    assert ours == official
    raw = yaml.safe_load((REPO_ROOT / "configs" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert {k: v for k, v in raw.items() if k != "model_name"} == \
        {k: v for k, v in SHIPPED[name].items() if k != "model_name"}
    assert load_config(dump_config(ours, tmp_path / "config.yaml")) == ours  # round trip
    assert packaged_config(name).read_bytes() == (REPO_ROOT / "configs" / f"{name}.yaml").read_bytes()
    info = arch_info(ours)
    assert info.thumos_config == name and packaged_config(info.thumos_config).is_file()


def test_tridet_defaults_are_tridets() -> None:
    cfg = config_from_dict(TRIDET_THUMOS)
    m = cfg.model
    assert isinstance(m, TriDetModelConfig) and cfg.model_name == "TriDet"
    assert (m.backbone_type, m.downsample_type, m.embd_dim, m.fpn_dim, m.head_dim) == ("SGP", "max", 512, 512, 512)
    assert (m.init_conv_vars, m.boudary_kernel_size, m.use_abs_pe, m.k, m.num_bins) == (0.0, 3, False, 5.0, 16)
    assert (cfg.opt.eta_min, cfg.train_cfg.droppath, cfg.opt.warmup_epochs, cfg.opt.epochs) == (1e-8, 0.1, 20, 20)
    assert m.max_div_factor == 32 and m.fpn_strides == (1, 2, 4, 8, 16, 32)
    # bare TriDet defaults; its default window -1 does not build (in TriDet either): a clear error instead
    d = TriDetModelConfig()
    assert (d.n_sgp_win_size, d.k, d.iou_weight_power, d.input_noise) == (-1, 1.5, 1.0, 0.0)
    with pytest.raises(ConfigError, match=r"model.n_sgp_win_size = -1: the SGP window of level 1, 2, 3, 4, 5 must be"):
        config_from_dict({"model_name": "TriDet"})


def test_temporalmaxer_defaults_are_temporalmaxers() -> None:
    cfg = config_from_dict(TEMPORALMAXER_THUMOS)
    m = cfg.model
    assert isinstance(m, TemporalMaxerModelConfig)
    assert (m.backbone_type, m.backbone_arch, m.fpn_start_level, m.embd_dim) == ("convPooler", (2, 5), 0, 512)
    assert dataclasses.asdict(m.assigner) == {"center_radius": 1.5, "iou_weight": 2.0, "cls_weight": 1.0,
                                              "keep_percent": 1.0, "confuse_weight": 0.0}
    assert (cfg.opt.warmup_epochs, cfg.opt.epochs, cfg.opt.early_stop_epochs) == (5, 60, None)
    assert m.max_div_factor == 32
    d = config_from_dict({"model_name": "TemporalMaxerArchitecture"}).model.assigner
    assert (d.center_radius, d.iou_weight, d.keep_percent, d.confuse_weight) == (2.5, 3.0, 0.65, 0.1)


@pytest.mark.parametrize("case", ["tridet", "tridet_icv01", "temporalmaxer"])
def test_golden_tiny_configs_load_and_round_trip(case: str) -> None:
    raw = json.loads((VARIANTS / f"{case}_tiny_config.json").read_text())
    cfg = config_from_dict(raw)  # with the derived copies in `model`, as their loaders return them
    assert (cfg.dataset.input_dim, cfg.dataset.num_classes, cfg.dataset.max_seq_len) == (32, 4, 576)
    thumos = config_from_dict(TRIDET_THUMOS if case.startswith("tridet") else TEMPORALMAXER_THUMOS)
    model_changes: dict[str, Any] = {"embd_dim": 32, "fpn_dim": 32, "head_dim": 32}
    if case.startswith("tridet"):
        model_changes["sgp_mlp_dim"] = 48
    if case == "tridet_icv01":
        model_changes["init_conv_vars"] = 0.1
    expected = dataclasses.replace(
        thumos, dataset=dataclasses.replace(thumos.dataset, input_dim=32, num_classes=4, max_seq_len=576),
        model=dataclasses.replace(thumos.model, **model_changes),
        opt=dataclasses.replace(thumos.opt, learning_rate=0.01, warmup_epochs=1, epochs=2))
    assert cfg == expected
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_eta_min_reaches_the_scheduler() -> None:
    cfg = config_from_dict({**TRIDET_THUMOS, "opt": {**TRIDET_THUMOS["opt"], "eta_min": 1e-6}})
    model = torch.nn.Linear(2, 2)
    sched = build_scheduler(build_optimizer(model, cfg.opt), cfg.opt, iters_per_epoch=2)
    assert sched.eta_min == 1e-6  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------ architecture selection


@pytest.mark.parametrize(("name", "cls", "model_cls"), [
    ("LocPointTransformer", ModelConfig, None), ("actionformer", ModelConfig, None),
    ("TriDet", TriDetModelConfig, TriDet), ("tridet", TriDetModelConfig, TriDet),
    ("TemporalMaxerArchitecture", TemporalMaxerModelConfig, TemporalMaxer),
    ("temporalmaxer", TemporalMaxerModelConfig, TemporalMaxer),
])
def test_one_key_switches_the_architecture(name: str, cls: type, model_cls: type | None) -> None:
    raw = {"model_name": name, "dataset": {"input_dim": 16, "num_classes": 3, "max_seq_len": 576},
           "model": {"embd_dim": 32, "fpn_dim": 32, "head_dim": 32}}
    if cls is TriDetModelConfig:
        raw["model"]["n_sgp_win_size"] = 1
    cfg = config_from_dict(raw)
    assert isinstance(cfg.model, cls) and cfg.model_name == cls.MODEL_NAME  # type: ignore[attr-defined]
    model = build_model(cfg)
    assert model_cls is None or isinstance(model, model_cls)
    assert type(model).__name__ == ("ActionFormer" if model_cls is None else model_cls.__name__)


def test_architecture_is_inferred_from_the_model_keys() -> None:
    assert isinstance(config_from_dict({"model": {"num_bins": 8, "n_sgp_win_size": 1}}).model, TriDetModelConfig)
    assert isinstance(config_from_dict({"model": {"assigner": {}}}).model, TemporalMaxerModelConfig)
    assert isinstance(config_from_dict({"model": {"n_mha_win_size": 19}}).model, ModelConfig)
    assert isinstance(config_from_dict({"model": {"embd_dim": 64}}).model, ModelConfig)  # shared keys: default


@pytest.mark.parametrize(("raw", "message"), [
    ({"model": {"num_bins": 16, "n_mha_win_size": 19}},
     r"^the model section mixes keys of two architectures: 'model.n_mha_win_size' is ActionFormer .*'model.num_bins' "
     r"is TriDet"),
    ({"model_name": "LocPointTransformer", "model": {"num_bins": 16}},
     r"^config key 'model.num_bins' belongs to TriDet \(model_name: TriDet\), not to ActionFormer"),
    ({"model_name": "TriDet", "model": {"assigner": {}}}, r"'model.assigner' belongs to TemporalMaxer"),
    ({"model_name": "TemporalMaxerArchitecture", "model": {"n_head": 4}}, r"'model.n_head' belongs to ActionFormer"),
    ({"model_name": "TriDet", "model": {"num_bin": 16}}, r"unknown config key 'model.num_bin'; did you mean "
                                                         r"'model.num_bins'\?"),
    ({"model_name": "TriDet", "model": {"init_conv_var": 0.1}}, r"did you mean 'model.init_conv_vars'\?"),
    ({"model_name": "TemporalMaxerArchitecture", "model": {"assigner": {"iou_weigth": 2}}},
     r"unknown config key 'model.assigner.iou_weigth'; did you mean 'model.assigner.iou_weight'\?"),
    ({"model_name": "TriDett"}, r"'model_name' = 'TriDett' is not a known architecture; did you mean 'TriDet'\?"),
    ({"model_name": "TriDet", "model": {"num_bins": "many"}}, r"config key 'model.num_bins': expected int"),
    ({"model_name": "TriDet", "model": {"downsample_type": "mean"}}, r"'model.downsample_type': expected one of"),
    ({"model_name": "TemporalMaxerArchitecture", "model": {"backbone_arch": [2, 2, 5]}},
     r"'model.backbone_arch': expected list of 2"),
])
def test_bad_input_gives_one_line_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        config_from_dict(raw)
    assert "\n" not in str(info.value)


def test_num_bins_too_small_names_the_level() -> None:
    raw = copy.deepcopy(TRIDET_THUMOS)
    raw["model"]["num_bins"] = 3
    with pytest.raises(ConfigError, match=r"model.num_bins = 3 is too small for pyramid level 0, 1, 2, 3, 4: "
                                          r"level 0's largest offset is num_bins x stride 1 = 3 .*use num_bins >= 4"):
        config_from_dict(raw)
    raw["model"]["num_bins"] = 4  # reaches every finite range end; the last level's open range starts at 64 <= 128
    assert config_from_dict(raw).model.num_bins == 4
    raw["model"]["regression_range"] = [[0, 4], [4, 8], [8, 16], [16, 32], [32, 64], [200, 10000]]
    with pytest.raises(ConfigError, match=r"level 5: level 5's largest offset is num_bins x stride 32 = 128 .* start"):
        config_from_dict(raw)


def test_tridet_max_seq_len_rule() -> None:
    raw = copy.deepcopy(TRIDET_THUMOS)
    raw["dataset"]["max_seq_len"] = 2300
    with pytest.raises(ConfigError, match=r"max_seq_len = 2300 must be divisible .* multiples of 32"):
        config_from_dict(raw)
    raw["model"]["n_sgp_win_size"] = 3  # TriDet's rule: stride * w -> 96 at level 5
    raw["dataset"]["max_seq_len"] = 2304
    assert config_from_dict(raw).model.max_div_factor == 96


def test_overrides_know_every_architecture(tmp_path: Path) -> None:
    af = REPO_ROOT / "configs" / "thumos_i3d.yaml"
    tri = REPO_ROOT / "configs" / "thumos_i3d_tridet.yaml"
    assert load_config(tri, ["model.num_bins=20"]).model.num_bins == 20
    assert load_config(tri, ["model.init_conv_vars=0.1"]).model.init_conv_vars == 0.1
    tm = load_config(REPO_ROOT / "configs" / "thumos_i3d_temporalmaxer.yaml", ["model.assigner.keep_percent=0.5"])
    assert tm.model.assigner.keep_percent == 0.5  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="did you mean 'model.num_bins'"):
        load_config(tri, ["model.num_binz=20"])
    with pytest.raises(ConfigError, match="mixes keys of two architectures"):  # ActionFormer's file + a TriDet key
        load_config(af, ["model.num_bins=20"])
    with pytest.raises(ConfigError, match="belongs to TriDet"):
        load_config(af, ["model_name=LocPointTransformer", "model.num_bins=20"])
    with pytest.raises(ConfigError, match="'model.n_mha_win_size' belongs to ActionFormer"):
        load_config(af, ["model_name=tridet"])  # its model section still has ActionFormer keys
    assert apply_overrides({}, ["model_name=tridet", "model.num_bins=8"])["model"] == {"num_bins": 8}


def test_model_name_must_match_the_model_section() -> None:
    cfg = config_from_dict({"model_name": "TriDet", "model": {"n_sgp_win_size": 1}})
    with pytest.raises(ConfigError, match="model_name = 'LocPointTransformer' does not match the model section"):
        dataclasses.replace(cfg, model_name="LocPointTransformer")


def test_checkpoint_keys_identify_the_architecture() -> None:
    for case, name in (("tridet", "TriDet"), ("temporalmaxer", "TemporalMaxerArchitecture")):
        with np.load(VARIANTS / f"{case}_weights.npz") as weights:
            keys = [f"module.{k}" for k in weights.files]  # as their DataParallel checkpoints name them
        info = guess_architecture(keys)
        assert info is not None and info.model_name == name
    af = build_model(config_from_dict({"model": {"n_mha_win_size": 19}, "dataset": {"max_seq_len": 2304}}))
    info = guess_architecture(af.state_dict())
    assert info is not None and info.model_name == "LocPointTransformer"
    assert guess_architecture(["foo.bar"]) is None
    assert set(ARCHITECTURES) == {"LocPointTransformer", "TriDet", "TemporalMaxerArchitecture"}
