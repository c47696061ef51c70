"""Tests for tadformer.config: official defaults, the THUMOS14 effective config, round trips, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tadformer.config import (
    ConfigError,
    ExperimentConfig,
    ModelConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    dumps_config,
    load_config,
    packaged_config,
    scale_for_devices,
    validate,
    with_empty_classes,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
THUMOS_YAML = REPO_ROOT / "configs" / "thumos_i3d.yaml"

# Official libs/core/config.py DEFAULTS, written out by hand (independent of tadformer.config).
OFFICIAL_DEFAULTS: dict[str, Any] = {
    "init_rand_seed": 1234567891,
    "dataset_name": "epic",
    "devices": ["cuda:0"],
    "train_split": ["training"],
    "val_split": ["validation"],
    "model_name": "LocPointTransformer",
    "dataset": {
        "feat_stride": 16, "num_frames": 32, "default_fps": None, "input_dim": 2304, "num_classes": 97,
        "downsample_rate": 1, "max_seq_len": 2304, "trunc_thresh": 0.5, "crop_ratio": None,
        "force_upsampling": False,
    },
    "loader": {"batch_size": 8, "num_workers": 4},
    "model": {
        "backbone_type": "convTransformer", "fpn_type": "identity", "backbone_arch": [2, 2, 5],
        "scale_factor": 2,
        "regression_range": [[0, 4], [4, 8], [8, 16], [16, 32], [32, 64], [64, 10000]],
        "n_head": 4, "n_mha_win_size": -1, "embd_kernel_size": 3, "embd_dim": 512, "embd_with_ln": True,
        "fpn_dim": 512, "fpn_with_ln": True, "fpn_start_level": 0, "head_dim": 512, "head_kernel_size": 3,
        "head_num_layers": 3, "head_with_ln": True, "max_buffer_len_factor": 6.0, "use_abs_pe": False,
        "use_rel_pe": False,
    },
    "train_cfg": {
        "center_sample": "radius", "center_sample_radius": 1.5, "loss_weight": 1.0, "cls_prior_prob": 0.01,
        "init_loss_norm": 2000, "clip_grad_l2norm": -1, "head_empty_cls": [], "dropout": 0.0,
        "droppath": 0.1, "label_smoothing": 0.0,
    },
    "test_cfg": {
        "pre_nms_thresh": 0.001, "pre_nms_topk": 5000, "iou_threshold": 0.1, "min_score": 0.01,
        "max_seg_num": 1000, "nms_method": "soft", "nms_sigma": 0.5, "duration_thresh": 0.05,
        "multiclass_nms": True, "ext_score_file": None, "voting_thresh": 0.75,
    },
    "opt": {
        "type": "AdamW", "momentum": 0.9, "weight_decay": 0.0, "learning_rate": 1e-3, "epochs": 30,
        "warmup": True, "warmup_epochs": 5, "schedule_type": "cosine", "schedule_steps": [],
        "schedule_gamma": 0.1,
    },
}
# Keys we add on top of DEFAULTS (the official YAMLs set the first five; the last two are ours/train.py's).
EXTRA_KEYS = {
    "output_folder": None, "dataset.json_file": None, "dataset.feat_folder": None,
    "dataset.file_prefix": None, "dataset.file_ext": None, "loader.accum_steps": 1,
    "opt.early_stop_epochs": None,
    "opt.eta_min": 1e-8,  # TriDet's key; ActionFormer hard-codes the same value
    "opt.ema_decay": 0.999,
}

# SPEC §1.2, "effective" column for configs/thumos_i3d.yaml: every row.
THUMOS_EFFECTIVE: list[tuple[str, Any]] = [
    ("init_rand_seed", 1234567891), ("dataset_name", "thumos"), ("devices", ("cuda:0",)),
    ("train_split", ("validation",)), ("val_split", ("test",)), ("model_name", "LocPointTransformer"),
    ("output_folder", "./ckpt/"),
    ("dataset.feat_stride", 4), ("dataset.num_frames", 16), ("dataset.default_fps", None),
    ("dataset.input_dim", 2048), ("dataset.num_classes", 20), ("dataset.downsample_rate", 1),
    ("dataset.max_seq_len", 2304), ("dataset.trunc_thresh", 0.5), ("dataset.crop_ratio", (0.9, 1.0)),
    ("dataset.force_upsampling", False), ("dataset.json_file", "./data/thumos/annotations/thumos14.json"),
    ("dataset.feat_folder", "./data/thumos/i3d_features"), ("dataset.file_prefix", None),
    ("dataset.file_ext", ".npy"),
    ("loader.batch_size", 2), ("loader.num_workers", 4),
    ("model.backbone_type", "convTransformer"), ("model.fpn_type", "identity"),
    ("model.backbone_arch", (2, 2, 5)), ("model.scale_factor", 2),
    ("model.regression_range", ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000))),
    ("model.n_head", 4), ("model.n_mha_win_size", 19), ("model.embd_kernel_size", 3),
    ("model.embd_dim", 512), ("model.embd_with_ln", True), ("model.fpn_dim", 512),
    ("model.fpn_with_ln", True), ("model.fpn_start_level", 0), ("model.head_dim", 512),
    ("model.head_kernel_size", 3), ("model.head_num_layers", 3), ("model.head_with_ln", True),
    ("model.max_buffer_len_factor", 6.0), ("model.use_abs_pe", False), ("model.use_rel_pe", False),
    ("input_dim", 2048), ("num_classes", 20), ("max_seq_len", 2304),
    ("train_cfg.center_sample", "radius"), ("train_cfg.center_sample_radius", 1.5),
    ("train_cfg.loss_weight", 1.0), ("train_cfg.cls_prior_prob", 0.01), ("train_cfg.init_loss_norm", 100),
    ("train_cfg.clip_grad_l2norm", 1.0), ("train_cfg.head_empty_cls", ()), ("train_cfg.dropout", 0.0),
    ("train_cfg.droppath", 0.1), ("train_cfg.label_smoothing", 0.0),
    ("test_cfg.pre_nms_thresh", 0.001), ("test_cfg.pre_nms_topk", 2000), ("test_cfg.iou_threshold", 0.1),
    ("test_cfg.min_score", 0.001), ("test_cfg.max_seg_num", 200), ("test_cfg.nms_method", "soft"),
    ("test_cfg.nms_sigma", 0.5), ("test_cfg.duration_thresh", 0.05), ("test_cfg.multiclass_nms", True),
    ("test_cfg.ext_score_file", None), ("test_cfg.voting_thresh", 0.7),
    ("opt.type", "AdamW"), ("opt.momentum", 0.9), ("opt.weight_decay", 0.05), ("opt.learning_rate", 1e-4),
    ("opt.epochs", 30), ("opt.warmup", True), ("opt.warmup_epochs", 5), ("opt.schedule_type", "cosine"),
    ("opt.schedule_steps", ()), ("opt.schedule_gamma", 0.1), ("opt.early_stop_epochs", None),
]


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def _write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ defaults


def test_defaults_equal_official_defaults() -> None:
    got = config_to_dict(ExperimentConfig())
    for dotted, value in EXTRA_KEYS.items():
        *parents, leaf = dotted.split(".")
        node = got
        for p in parents:
            node = node[p]
        assert node.pop(leaf) == value, dotted
    assert got == OFFICIAL_DEFAULTS
    # official key order is kept (the extras come last in each section)
    for section, keys in OFFICIAL_DEFAULTS.items():
        if isinstance(keys, dict):
            assert list(got[section]) == list(keys), section


def test_defaults_are_validated_and_derived_values() -> None:
    cfg = validate(ExperimentConfig())
    assert cfg.model.fpn_strides == (1, 2, 4, 8, 16, 32)
    assert cfg.model.win_sizes == (-1,) * 6
    assert cfg.model.max_div_factor == 32  # global attention: the divisor is just the stride


# ------------------------------------------------------------------------------------ THUMOS


@pytest.mark.parametrize(("key", "expected"), THUMOS_EFFECTIVE, ids=[k for k, _ in THUMOS_EFFECTIVE])
def test_thumos_effective_config(key: str, expected: Any) -> None:
    cfg = load_config(THUMOS_YAML)
    got = _get(cfg, key)
    assert got == expected
    assert type(got) is type(expected) or isinstance(expected, int) and isinstance(got, float)


def test_thumos_derived_quantities() -> None:
    m = load_config(THUMOS_YAML).model
    assert m.fpn_strides == (1, 2, 4, 8, 16, 32)
    assert m.num_levels == 6
    assert m.win_sizes == (19,) * 6
    assert m.level_divisors == (18, 36, 72, 144, 288, 576)
    assert m.max_div_factor == 576
    assert 2304 * m.max_buffer_len_factor == 13824.0


def test_packaged_copy_is_identical() -> None:
    packaged = packaged_config("thumos_i3d")
    assert packaged.read_bytes() == THUMOS_YAML.read_bytes()
    assert load_config(packaged) == load_config(THUMOS_YAML)
    with pytest.raises(ConfigError, match="thumos_i3d"):
        packaged_config("no_such_config")


# ------------------------------------------------------------------------------------ golden


def test_golden_tiny_config(golden_dir: Path) -> None:
    raw = json.loads((golden_dir / "tiny_config.json").read_text())
    cfg = config_from_dict(raw)
    assert (cfg.input_dim, cfg.num_classes, cfg.max_seq_len) == (32, 4, 576)
    assert (cfg.model.embd_dim, cfg.model.fpn_dim, cfg.model.head_dim) == (32, 32, 32)
    assert (cfg.opt.learning_rate, cfg.opt.warmup_epochs, cfg.opt.epochs) == (0.01, 1, 2)
    assert cfg.model.max_div_factor == 576
    # everything else equals the THUMOS config
    thumos = load_config(THUMOS_YAML)
    changed: dict[str, dict[str, Any]] = {
        "dataset": {"input_dim": 32, "num_classes": 4, "max_seq_len": 576},
        "model": {"embd_dim": 32, "fpn_dim": 32, "head_dim": 32},
        "opt": {"learning_rate": 0.01, "warmup_epochs": 1, "epochs": 2},
    }
    expected = dataclasses.replace(
        thumos, **{s: dataclasses.replace(getattr(thumos, s), **kv) for s, kv in changed.items()})
    assert cfg == expected
    # the dump equals the official dict minus the derived copies in `model`, plus our extras
    for key in ("input_dim", "num_classes", "max_seq_len", "train_cfg", "test_cfg"):
        del raw["model"][key]
    raw["loader"]["accum_steps"] = 1
    raw["opt"]["early_stop_epochs"] = None
    raw["opt"]["eta_min"] = 1e-8
    raw["opt"]["ema_decay"] = 0.999
    assert config_to_dict(cfg) == raw


@pytest.mark.parametrize(("key", "value", "named"), [
    ("input_dim", 64, "model.input_dim"),
    ("max_seq_len", 1152, "model.max_seq_len"),
    ("test_cfg", {"max_seg_num": 100}, "model.test_cfg.max_seg_num"),
    ("train_cfg", {"droppath": 0.2}, "model.train_cfg.droppath"),
])
def test_derived_copies_must_agree(golden_dir: Path, key: str, value: Any, named: str) -> None:
    raw = json.loads((golden_dir / "tiny_config.json").read_text())
    raw["model"][key] = value if not isinstance(value, dict) else {**raw["model"][key], **value}
    with pytest.raises(ConfigError, match=f"'{named}'.*contradicts"):
        config_from_dict(raw)


# ------------------------------------------------------------------------------------ round trip


POLYMORPHIC_YAML = """\
# multi-feature input, per-level windows, nothing cropped
dataset_name: ego4d
dataset: {
  feat_folder: ['./a', './b'],   # a list of folders
  input_dim: [1536, 256],
  default_fps: 30,
  crop_ratio: ~,
  max_seq_len: 1024,
}
model: {
  regression_range: [
    [0, 4], [2, 8], [4, 16], [8, 32],
    [16, 64], [32, 128], [64, 10000],
  ],
  backbone_arch: [2, 2, 6],
  n_mha_win_size: [9, 9, 9, 9, 9, 9, -1],
  embd_dim: [256, 256],
}
opt: {type: SGD, learning_rate: 1e-4, schedule_type: multistep,
      schedule_steps: [10, 20], early_stop_epochs: 25}
"""


def test_polymorphic_flow_yaml_loads(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, POLYMORPHIC_YAML))
    assert cfg.dataset.feat_folder == ("./a", "./b")
    assert cfg.dataset.input_dim == (1536, 256)
    assert cfg.dataset.default_fps == 30.0 and isinstance(cfg.dataset.default_fps, float)
    assert cfg.dataset.crop_ratio is None
    assert cfg.model.win_sizes == (9, 9, 9, 9, 9, 9, -1)
    assert cfg.model.level_divisors == (8, 16, 32, 64, 128, 256, 64)
    assert cfg.model.max_div_factor == 256
    assert cfg.opt.learning_rate == 1e-4 and cfg.opt.schedule_steps == (10, 20)
    assert cfg.opt.early_stop_epochs == 25


@pytest.mark.parametrize("source", ["defaults", "thumos", "polymorphic"])
def test_round_trip(tmp_path: Path, source: str) -> None:
    cfg = {"defaults": ExperimentConfig(), "thumos": load_config(THUMOS_YAML),
           "polymorphic": load_config(_write(tmp_path, POLYMORPHIC_YAML, "poly.yaml"))}[source]
    path = dump_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(path) == cfg
    assert config_from_dict(yaml.safe_load(dumps_config(cfg))) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temp file left behind
    plain = config_to_dict(cfg)
    assert yaml.safe_load(dumps_config(cfg)) == plain
    assert isinstance(plain["devices"], list) and isinstance(plain["model"]["regression_range"][0], list)
    dump_config(dataclasses.replace(cfg, init_rand_seed=7), path)  # overwrite in place
    assert load_config(path).init_rand_seed == 7


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("text", "message"), [
    ("opt: {learnig_rate: 0.1}", "unknown config key 'opt.learnig_rate'; did you mean 'opt.learning_rate'"),
    ("dataset_nmae: thumos", "unknown config key 'dataset_nmae'; did you mean 'dataset_name'"),
    ("dataset: {learning_rate: 0.1}", "unknown config key 'dataset.learning_rate'; did you mean "
                                      "'opt.learning_rate'"),
    ("model: {train_cfg: {dropuot: 0.1}}", "unknown config key 'model.train_cfg.dropuot'; did you mean "
                                           "'model.train_cfg.dropout'"),
])
def test_unknown_key_suggests(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("text", "message"), [
    ("loader: {batch_size: 2.5}", "'loader.batch_size': expected int, got float 2.5"),
    ("dataset: {num_classes: true}", "'dataset.num_classes': expected int, got bool True"),
    ("opt: {learning_rate: fast}", "'opt.learning_rate': expected number, got str 'fast'"),
    ("opt: {epochs: '30'}", "'opt.epochs': expected int, got str '30'"),
    ("test_cfg: {nms_method: gaussian}", "'test_cfg.nms_method': expected one of 'soft', 'hard', 'none'"),
    ("model: {backbone_arch: [2, 2]}", "'model.backbone_arch': expected list of 3 [int, int, int]"),
    ("dataset: {crop_ratio: 0.9}", "'dataset.crop_ratio': expected list of 2 [number, number] or null"),
    ("model: {n_mha_win_size: [19, x]}", "'model.n_mha_win_size': expected int or list of int"),
    ("model: 3", "'model': expected a mapping, got int 3"),
])
def test_wrong_type_names_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert message in str(info.value)


def test_numbers_and_pyyaml_exponent_strings(tmp_path: Path) -> None:
    assert yaml.safe_load("a: 1e-4")["a"] == "1e-4"  # why float fields accept numeric strings
    cfg = load_config(_write(tmp_path, "opt: {learning_rate: 1e-4, weight_decay: 0}\n"
                                       "train_cfg: {init_loss_norm: 100}"))
    assert cfg.opt.learning_rate == 1e-4 and isinstance(cfg.opt.learning_rate, float)
    assert cfg.opt.weight_decay == 0.0 and isinstance(cfg.opt.weight_decay, float)
    assert isinstance(cfg.train_cfg.init_loss_norm, float)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "dataset_name: thumos\nopt:\n  epochs: 3\n   lr: 2\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: malformed YAML at line 4"):
        load_config(path)
    with pytest.raises(ConfigError, match="empty"):
        load_config(_write(tmp_path, "# only a comment\n", "empty.yaml"))
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(_write(tmp_path, "- 1\n- 2\n", "list.yaml"))


# ------------------------------------------------------------------------------------ overrides


def test_overrides_are_typed() -> None:
    cfg = load_config(THUMOS_YAML, ["opt.learning_rate=1e-3", "dataset_name=other", "loader.batch_size=4",
                                    "test_cfg.ext_score_file=~", "opt.early_stop_epochs=20"])
    assert cfg.opt.learning_rate == 1e-3 and isinstance(cfg.opt.learning_rate, float)
    assert (cfg.dataset_name, cfg.loader.batch_size, cfg.opt.early_stop_epochs) == ("other", 4, 20)
    assert cfg.test_cfg.ext_score_file is None
    five_levels = ["model.backbone_arch=[2,2,4]",
                   "model.regression_range=[[0,4],[4,8],[8,16],[16,32],[32,10000]]"]
    cfg = load_config(THUMOS_YAML, five_levels)
    assert cfg.model.backbone_arch == (2, 2, 4) and cfg.model.num_levels == 5
    assert cfg.model.max_div_factor == 16 * 18
    with pytest.raises(ConfigError, match="model.regression_range has 6 entries, expected one per pyramid "
                                          "level: 5"):
        load_config(THUMOS_YAML, five_levels[:1])


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    path = _write(tmp_path, "dataset: {max_seq_len: 2300}\nmodel: {n_mha_win_size: 19}")
    with pytest.raises(ConfigError, match="max_seq_len"):
        load_config(path)
    assert load_config(path, ["dataset.max_seq_len=2304"]).max_seq_len == 2304


@pytest.mark.parametrize(("item", "message"), [
    ("opt.learnig_rate=1", "did you mean 'opt.learning_rate'"),
    ("optt.learning_rate=1", "did you mean 'opt'"),
    ("model.input_dim=3", "'model.input_dim' is derived; set 'dataset.input_dim' instead"),
    ("opt.learning_rate.x=1", "'opt.learning_rate' has no sub-keys"),
    ("opt.learning_rate", "expected 'section.key=value'"),
    ("opt.epochs=[1,", "not valid YAML"),
])
def test_bad_overrides(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"override .*{message}".replace("[", r"\[").replace("(", r"\(")):
        load_config(THUMOS_YAML, [item])


# ------------------------------------------------------------------------------------ validation


def test_invalid_max_seq_len_lists_valid_values() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(THUMOS_YAML, ["dataset.max_seq_len=2300"])
    msg = str(info.value)
    # 2300 = 3*576 + 572: the nearest multiples of 576 are 1728 and 2304
    assert "dataset.max_seq_len = 2300" in msg and "multiples of 576" in msg and "1728, 2304" in msg
    assert "level 5: stride 32 x window 19 -> 576" in msg


def test_max_seq_len_rule_uses_every_level() -> None:
    # windows 9, 7 then global: divisors 1*8, 2*6, 4, 8, 16, 32 -> any valid length is a multiple of 96
    model = ModelConfig(n_mha_win_size=(9, 7, -1, -1, -1, -1))
    assert model.level_divisors == (8, 12, 4, 8, 16, 32) and model.max_div_factor == 32
    base = ExperimentConfig(model=model)
    with pytest.raises(ConfigError, match="multiples of 96, nearest: 96$"):
        validate(dataclasses.replace(base, dataset=dataclasses.replace(base.dataset, max_seq_len=64)))
    validate(dataclasses.replace(base, dataset=dataclasses.replace(base.dataset, max_seq_len=96)))


@pytest.mark.parametrize(("item", "message"), [
    ("model.n_head=5", "model.n_head = 5 must divide model.embd_dim = 512"),
    ("dataset.crop_ratio=[1.0, 0.9]", "dataset.crop_ratio = (1.0, 0.9) must be 0 < lo <= hi <= 1"),
    ("dataset.crop_ratio=[0.0, 0.9]", "dataset.crop_ratio = (0.0, 0.9) must be 0 < lo <= hi <= 1"),
    ("train_cfg.cls_prior_prob=1.5", "train_cfg.cls_prior_prob = 1.5 must be in (0, 1)"),
    ("model.embd_kernel_size=4", "model.embd_kernel_size = 4 must be odd"),
    ("model.n_mha_win_size=[19, 19]", "model.n_mha_win_size has 2 entries, expected one per backbone level"),
    ("dataset.input_dim=0", "dataset.input_dim = 0 must be >= 1"),
    ("model.embd_dim=[256, 256]", "so dataset.input_dim must be a list of the same length"),
    ("loader.batch_size=0", "loader.batch_size = 0 must be >= 1"),
    ("test_cfg.min_score=-0.1", "test_cfg.min_score = -0.1 must be in [0, 1]"),
    ("model.regression_range=[[0,4],[4,8],[8,16],[16,32],[64,32],[64,10000]]",
     "model.regression_range[4] = (64.0, 32.0) must satisfy 0 <= lo < hi"),
    ("train_cfg.head_empty_cls=[3, 20]", "train_cfg.head_empty_cls = (3, 20) must be class ids in [0, 20)"),
])
def test_impossible_values_name_the_key(item: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(THUMOS_YAML, [item])
    assert message in str(info.value)


# ------------------------------------------------------------------------------------ isolation


def test_two_loads_do_not_share_state(tmp_path: Path) -> None:
    first = load_config(THUMOS_YAML)
    snapshot = dumps_config(first)
    other = load_config(_write(tmp_path, POLYMORPHIC_YAML), ["train_cfg.head_empty_cls=[1]"])
    assert other.train_cfg.head_empty_cls == (1,)
    assert first.train_cfg.head_empty_cls == () and dumps_config(first) == snapshot
    assert load_config(THUMOS_YAML) == first
    assert config_to_dict(ExperimentConfig()) == config_to_dict(ExperimentConfig())
    plain = config_to_dict(first)
    plain["model"]["backbone_arch"].append(9)  # mutating a dump does not reach the config
    assert first.model.backbone_arch == (2, 2, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.opt.learning_rate = 1.0  # type: ignore[misc]


# ------------------------------------------------------------------------------------ run-time helpers


def test_scale_for_devices() -> None:
    cfg = load_config(THUMOS_YAML)
    scaled = scale_for_devices(cfg, 2)
    assert scaled.opt.learning_rate == 2e-4 and scaled.loader.num_workers == 8
    assert cfg.opt.learning_rate == 1e-4 and cfg.loader.num_workers == 4
    assert scale_for_devices(cfg, 1) == cfg
    with pytest.raises(ConfigError, match="n_devices"):
        scale_for_devices(cfg, 0)


def test_with_empty_classes() -> None:
    cfg = load_config(THUMOS_YAML)
    assert with_empty_classes(cfg, [3, 5]).train_cfg.head_empty_cls == (3, 5)
    assert cfg.train_cfg.head_empty_cls == ()
    with pytest.raises(ConfigError, match="train_cfg.head_empty_cls"):
        with_empty_classes(cfg, [20])


def test_construction_and_replace_validate() -> None:
    cfg = load_config(THUMOS_YAML)
    with pytest.raises(ConfigError, match="loader.batch_size = 0 must be >= 1"):
        dataclasses.replace(cfg, loader=dataclasses.replace(cfg.loader, batch_size=0))
    with pytest.raises(ConfigError, match="dataset.max_seq_len = 100 must be divisible"):
        ExperimentConfig(model=ModelConfig(n_mha_win_size=19),
                         dataset=dataclasses.replace(cfg.dataset, max_seq_len=100))
