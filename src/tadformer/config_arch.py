"""The ``model`` section of the config, one frozen dataclass per architecture.

Each architecture keeps the key names and defaults of its own repository's ``libs/core/config.py``:

* :class:`ModelConfig`: ActionFormer (``model_name: LocPointTransformer``), happyharrycn/actionformer_release.
* :class:`TriDetModelConfig`: TriDet (``model_name: TriDet``), dingfengshi/TriDet.
* :class:`TemporalMaxerModelConfig`: TemporalMaxer (``model_name: TemporalMaxerArchitecture``), TuanTNG/TemporalMaxer.

:data:`ARCHITECTURES` lists them, keyed by the official ``model_name``. Every model section answers the
same questions (``fpn_strides``, ``num_levels``, ``max_div_factor``, :meth:`problems`), so code outside
the model builder never asks which architecture it has.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

__all__ = [
    "ARCHITECTURES", "AnyModelConfig", "ArchInfo", "ModelConfig", "SimOTAConfig", "TemporalMaxerModelConfig",
    "TriDetModelConfig", "arch_info", "guess_architecture", "model_keys", "resolve_model_name",
]

_THUMOS_RANGES: tuple[tuple[float, float], ...] = (
    (0.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 32.0), (32.0, 64.0), (64.0, 10000.0))


def _common_problems(m: Any) -> list[str]:
    """Checks every architecture shares: kernel sizes, widths, regression ranges."""
    checks: list[tuple[str, Any, bool, str]] = [
        ("model.scale_factor", m.scale_factor, m.scale_factor >= 1, ">= 1"),
        ("model.embd_kernel_size", m.embd_kernel_size, m.embd_kernel_size % 2 == 1, "odd and >= 1"),
        ("model.head_kernel_size", m.head_kernel_size, m.head_kernel_size % 2 == 1, "odd and >= 1"),
        ("model.fpn_dim", m.fpn_dim, m.fpn_dim >= 1, ">= 1"),
        ("model.head_dim", m.head_dim, m.head_dim >= 1, ">= 1"),
        ("model.head_num_layers", m.head_num_layers, m.head_num_layers >= 1, ">= 1"),
        ("model.max_buffer_len_factor", m.max_buffer_len_factor, m.max_buffer_len_factor > 0, "> 0"),
        ("model.backbone_arch", m.backbone_arch, min(m.backbone_arch) >= 0, "non-negative"),
    ]
    out = [f"{key} = {value!r} must be {rule}" for key, value, ok, rule in checks if not ok]
    dim = m.embd_dim
    if (isinstance(dim, int) and dim < 1) or (isinstance(dim, tuple) and (not dim or min(dim) < 1)):
        out.append(f"model.embd_dim = {dim!r} must be >= 1 (or a non-empty list of such)")
    if len(m.regression_range) != m.num_levels:
        out.append(f"model.regression_range has {len(m.regression_range)} entries, expected one per "
                   f"pyramid level: {m.num_levels}")
    out += [f"model.regression_range[{l}] = {r!r} must satisfy 0 <= lo < hi"
            for l, r in enumerate(m.regression_range) if not 0 <= r[0] < r[1]]
    return out


def _divisor_problem(m: Any, max_seq_len: int, rule: str) -> str | None:
    """``max_seq_len`` must be divisible by every level's divisor; the nearest valid values when not."""
    import math

    divisors = m.level_divisors
    bad = [(l, d) for l, d in enumerate(divisors) if max_seq_len % d]
    if not bad:
        return None
    lcm = math.lcm(*divisors)
    below, above = (max_seq_len // lcm) * lcm, (max_seq_len // lcm + 1) * lcm
    near = ", ".join(str(v) for v in (below, above) if v > 0)
    levels = "; ".join(f"level {l}: {m.describe_divisor(l)} -> {d}" for l, d in bad)
    return (f"dataset.max_seq_len = {max_seq_len} must be divisible by every level's {rule} ({levels}); "
            f"valid values are multiples of {lcm}, nearest: {near}")


# ----------------------------------------------------------------------------------------- ActionFormer


@dataclass(frozen=True)
class ModelConfig:
    """ActionFormer ``model`` section: network architecture (lengths and ranges in level-0 feature steps)."""

    MODEL_NAME: ClassVar[str] = "LocPointTransformer"

    backbone_type: Literal["convTransformer", "conv"] = "convTransformer"
    fpn_type: Literal["identity", "fpn"] = "identity"
    backbone_arch: tuple[int, int, int] = (2, 2, 5)  # (embedding convs, stem blocks, branch blocks)
    scale_factor: int = 2  # downsampling between pyramid levels
    regression_range: tuple[tuple[float, float], ...] = _THUMOS_RANGES
    n_head: int = 4  # heads in self-attention
    n_mha_win_size: int | tuple[int, ...] = -1  # local attention window; <= 1 means global attention
    embd_kernel_size: int = 3
    embd_dim: int | tuple[int, ...] = 512  # output channels of the embedding network
    embd_with_ln: bool = True
    fpn_dim: int = 512
    fpn_with_ln: bool = True  # LayerNorm at the end of the FPN outputs
    fpn_start_level: int = 0
    head_dim: int = 512
    head_kernel_size: int = 3
    head_num_layers: int = 3  # layers in each head, including the final one
    head_with_ln: bool = True
    max_buffer_len_factor: float = 6.0  # point buffer length = max_seq_len * this
    use_abs_pe: bool = False  # absolute position encoding added to the input embedding
    use_rel_pe: bool = False  # relative position encoding in self-attention

    @property
    def fpn_strides(self) -> tuple[int, ...]:
        """Stride of each pyramid level used by the heads, in level-0 steps."""
        return tuple(self.scale_factor**l for l in range(self.fpn_start_level, self.backbone_arch[2] + 1))

    @property
    def num_levels(self) -> int:
        """Number of pyramid levels seen by the heads (= len(fpn_strides))."""
        return len(self.fpn_strides)

    @property
    def win_sizes(self) -> tuple[int, ...]:
        """Attention window per backbone level (1 + backbone_arch[2] entries; an int is repeated)."""
        n = self.backbone_arch[2] + 1
        w = self.n_mha_win_size
        return (w,) * n if isinstance(w, int) else tuple(w)

    @property
    def level_divisors(self) -> tuple[int, ...]:
        """Per-level divisor of max_seq_len: stride * (w//2)*2 for local attention, else the stride.

        Like the official model, strides (from fpn_start_level) are zipped with windows (from level 0).
        """
        return tuple(s * (w // 2) * 2 if w > 1 else s for s, w in zip(self.fpn_strides, self.win_sizes))

    @property
    def max_div_factor(self) -> int:
        """Inputs are padded to a multiple of this (576 for THUMOS: stride 32 x window 18)."""
        return max((1, *self.level_divisors))

    def describe_divisor(self, level: int) -> str:
        return f"stride {self.fpn_strides[level]} x window {self.win_sizes[level]}"

    def problems(self, max_seq_len: int) -> list[str]:
        """Every constraint of this section (and of ``dataset.max_seq_len`` it implies)."""
        m = self
        out = [f"model.n_head = {m.n_head!r} must be >= 1"] if m.n_head < 1 else []
        out += [f"model.fpn_start_level = {m.fpn_start_level!r} must be in [0, backbone_arch[2] = "
                f"{m.backbone_arch[2]}]"] if not 0 <= m.fpn_start_level <= m.backbone_arch[2] else []
        out += _common_problems(m)
        embd_total = sum(m.embd_dim) if isinstance(m.embd_dim, tuple) else m.embd_dim
        if m.backbone_type == "convTransformer" and m.n_head >= 1 and embd_total % m.n_head:
            out.append(f"model.n_head = {m.n_head} must divide model.embd_dim = {m.embd_dim!r}")
        if len(m.win_sizes) != m.backbone_arch[2] + 1:
            out.append(f"model.n_mha_win_size has {len(m.win_sizes)} entries, expected one per backbone "
                       f"level: 1 + backbone_arch[2] = {m.backbone_arch[2] + 1}")
        if not out and max_seq_len > 0:
            problem = _divisor_problem(m, max_seq_len, "stride*(window//2)*2")
            out += [problem] if problem else []
        return out


# ----------------------------------------------------------------------------------------- TriDet


@dataclass(frozen=True)
class TriDetModelConfig:
    """TriDet ``model`` section (defaults: TriDet's ``libs/core/config.py``).

    ``sgp_mlp_dim`` is not in TriDet's DEFAULTS (its model requires it); the default here is the value of
    every released TriDet config for 512 channels, 768.
    """

    MODEL_NAME: ClassVar[str] = "TriDet"

    backbone_type: Literal["SGP", "conv"] = "SGP"
    fpn_type: Literal["identity", "fpn"] = "identity"
    backbone_arch: tuple[int, int, int] = (2, 2, 5)  # (embedding convs, stem SGP blocks, branch SGP blocks)
    scale_factor: int = 2
    regression_range: tuple[tuple[float, float], ...] = _THUMOS_RANGES
    n_sgp_win_size: int | tuple[int, ...] = -1  # window w of the SGP depthwise convs (branch levels)
    embd_kernel_size: int = 3
    embd_dim: int = 512
    embd_with_ln: bool = True
    fpn_dim: int = 512
    fpn_with_ln: bool = True
    head_dim: int = 512
    head_kernel_size: int = 3
    boudary_kernel_size: int = 3  # (sic, TriDet's spelling) kernel of the start/end boundary heads
    head_num_layers: int = 3
    head_with_ln: bool = True
    max_buffer_len_factor: float = 6.0
    use_abs_pe: bool = False
    use_trident_head: bool = True
    downsample_type: Literal["max", "avg"] = "max"
    k: float = 1.5  # window-level branch kernel is about k * (w + 1)
    init_conv_vars: float = 0.0  # std of the SGP depthwise conv weights at init; 0 leaves the branches dead
    num_bins: int = 16  # Trident bins per side, excluding 0
    iou_weight_power: float = 1.0  # exponent of the IoU weight of the positive focal loss
    input_noise: float = 0.0  # std of the Gaussian noise added to the padded inputs in training
    sgp_mlp_dim: int = 768  # hidden width of the SGP MLP

    @property
    def fpn_strides(self) -> tuple[int, ...]:
        return tuple(self.scale_factor**l for l in range(self.backbone_arch[2] + 1))

    @property
    def num_levels(self) -> int:
        return len(self.fpn_strides)

    @property
    def win_sizes(self) -> tuple[int, ...]:
        """SGP window per level (1 + backbone_arch[2] entries; an int is repeated)."""
        n = self.backbone_arch[2] + 1
        w = self.n_sgp_win_size
        return (w,) * n if isinstance(w, int) else tuple(w)

    @property
    def level_divisors(self) -> tuple[int, ...]:
        """TriDet's rule: ``stride * w`` for w > 1, else the stride."""
        return tuple(s * w if w > 1 else s for s, w in zip(self.fpn_strides, self.win_sizes))

    @property
    def max_div_factor(self) -> int:
        return max((1, *self.level_divisors))

    def describe_divisor(self, level: int) -> str:
        return f"stride {self.fpn_strides[level]} x window {self.win_sizes[level]}"

    def bins_problems(self) -> list[str]:
        """The largest Trident offset of level l is ``num_bins * stride_l`` feature steps; it must reach the end
        of the level's regression range (its start, for the open-ended last level)."""
        if self.num_bins < 1:
            return [f"model.num_bins = {self.num_bins} must be >= 1"]
        if not self.use_trident_head:
            return []
        short = []  # (level, stride, needed steps, which end)
        last = len(self.regression_range) - 1
        for level, ((lo, hi), stride) in enumerate(zip(self.regression_range, self.fpn_strides)):
            need, which = (lo, "start") if level == last else (hi, "end")
            if self.num_bins * stride < need:
                short.append((level, stride, need, which, (lo, hi)))
        if not short:
            return []
        level, stride, need, which, rng = short[0]
        fix = max(-(-int(n) // s) for _, s, n, _, _ in short)
        levels = ", ".join(str(x[0]) for x in short)
        return [f"model.num_bins = {self.num_bins} is too small for pyramid level {levels}: level {level}'s largest "
                f"offset is num_bins x stride {stride} = {self.num_bins * stride} feature steps, short of the {which} "
                f"of its regression range {rng}; use num_bins >= {fix}"]

    def problems(self, max_seq_len: int) -> list[str]:
        m = self
        out = _common_problems(m)
        out += [f"model.boudary_kernel_size = {m.boudary_kernel_size!r} must be odd and >= 1"] \
            if m.boudary_kernel_size % 2 != 1 else []
        out += [f"model.sgp_mlp_dim = {m.sgp_mlp_dim!r} must be >= 1"] if m.sgp_mlp_dim < 1 else []
        out += [f"model.k = {m.k!r} must be > 0"] if m.k <= 0 else []
        out += [f"model.init_conv_vars = {m.init_conv_vars!r} must be >= 0 (a standard deviation)"] \
            if m.init_conv_vars < 0 else []
        out += [f"model.input_noise = {m.input_noise!r} must be >= 0"] if m.input_noise < 0 else []
        out += [f"model.iou_weight_power = {m.iou_weight_power!r} must be >= 0"] if m.iou_weight_power < 0 else []
        if m.backbone_type == "SGP" and m.embd_dim % 16:
            out.append(f"model.embd_dim = {m.embd_dim} must be a multiple of 16 (GroupNorm with 16 groups in "
                       f"every SGP block)")
        if len(m.win_sizes) != m.backbone_arch[2] + 1:
            out.append(f"model.n_sgp_win_size has {len(m.win_sizes)} entries, expected one per backbone "
                       f"level: 1 + backbone_arch[2] = {m.backbone_arch[2] + 1}")
        bad_windows = [l for l, w in enumerate(m.win_sizes) if l > 0 and (w < 1 or w % 2 == 0)]
        if m.backbone_type == "SGP" and bad_windows:  # the branch blocks' depthwise kernels (the stem always uses 1)
            out.append(f"model.n_sgp_win_size = {m.n_sgp_win_size!r}: the SGP window of level "
                       f"{', '.join(map(str, bad_windows))} must be odd and >= 1 (it is a conv kernel; TriDet's "
                       f"default -1 does not build, its configs use 1)")
        out += m.bins_problems()
        if not out and max_seq_len > 0:
            problem = _divisor_problem(m, max_seq_len, "stride*window")
            out += [problem] if problem else []
        return out


# ----------------------------------------------------------------------------------------- TemporalMaxer


@dataclass(frozen=True)
class SimOTAConfig:
    """``model.assigner`` of TemporalMaxer: the SimOTA assigner (defaults: its ``SimOTAAssigner``)."""

    center_radius: float = 2.5  # centre-sampling radius of the candidate mask, in strides
    iou_weight: float = 3.0  # weight of the DIoU cost
    cls_weight: float = 1.0  # weight of the focal-loss cost
    keep_percent: float = 0.65  # share of each segment's inside points whose weight is restored to 1
    confuse_weight: float = 0.1  # weight of the other inside points


@dataclass(frozen=True)
class TemporalMaxerModelConfig:
    """TemporalMaxer ``model`` section (defaults: TemporalMaxer's ``libs/core/config.py``).

    ``assigner`` is not in its DEFAULTS (its model requires it); the default here is its
    ``SimOTAAssigner``'s own defaults. ``fpn_with_ln`` is accepted and, as in TemporalMaxer, unused:
    the neck is always a parameter-free GroupNorm (4 groups).
    """

    MODEL_NAME: ClassVar[str] = "TemporalMaxerArchitecture"

    backbone_type: Literal["convPooler"] = "convPooler"
    fpn_type: Literal["identity"] = "identity"
    backbone_arch: tuple[int, int] = (2, 5)  # (embedding convs, max-pool levels)
    scale_factor: int = 2
    regression_range: tuple[tuple[float, float], ...] = _THUMOS_RANGES
    embd_kernel_size: int = 3
    embd_dim: int | tuple[int, ...] = 512
    embd_with_ln: bool = True
    fpn_dim: int = 512
    fpn_with_ln: bool = True
    fpn_start_level: int = 0
    head_dim: int = 512
    head_kernel_size: int = 3
    head_num_layers: int = 3
    head_with_ln: bool = True
    max_buffer_len_factor: float = 6.0
    assigner: SimOTAConfig = field(default_factory=SimOTAConfig)

    @property
    def fpn_strides(self) -> tuple[int, ...]:
        return tuple(self.scale_factor**l for l in range(self.fpn_start_level, self.backbone_arch[-1] + 1))

    @property
    def num_levels(self) -> int:
        return len(self.fpn_strides)

    @property
    def level_divisors(self) -> tuple[int, ...]:
        return self.fpn_strides

    @property
    def max_div_factor(self) -> int:
        """TemporalMaxer pads evaluation inputs to a multiple of its largest stride."""
        return max((1, *self.fpn_strides))

    def describe_divisor(self, level: int) -> str:
        return f"stride {self.fpn_strides[level]}"

    def problems(self, max_seq_len: int) -> list[str]:
        m, a = self, self.assigner
        out = [f"model.fpn_start_level = {m.fpn_start_level!r} must be in [0, backbone_arch[1] = "
               f"{m.backbone_arch[1]}]"] if not 0 <= m.fpn_start_level <= m.backbone_arch[1] else []
        out += _common_problems(m)
        embd_total = sum(m.embd_dim) if isinstance(m.embd_dim, tuple) else m.embd_dim
        if embd_total % 4:
            out.append(f"model.embd_dim = {m.embd_dim!r} must be a multiple of 4 (GroupNorm with 4 groups in "
                       f"the neck)")
        if embd_total != m.fpn_dim:
            out.append(f"model.fpn_dim = {m.fpn_dim} must equal the embedding width {embd_total} (the "
                       f"identity neck does not project)")
        checks: list[tuple[str, Any, bool, str]] = [
            ("model.assigner.center_radius", a.center_radius, a.center_radius > 0, "> 0"),
            ("model.assigner.iou_weight", a.iou_weight, a.iou_weight >= 0, ">= 0"),
            ("model.assigner.cls_weight", a.cls_weight, a.cls_weight >= 0, ">= 0"),
            ("model.assigner.keep_percent", a.keep_percent, 0.0 <= a.keep_percent <= 1.0, "in [0, 1]"),
            ("model.assigner.confuse_weight", a.confuse_weight, a.confuse_weight >= 0, ">= 0"),
        ]
        out += [f"{key} = {value!r} must be {rule}" for key, value, ok, rule in checks if not ok]
        if not out and max_seq_len > 0:
            problem = _divisor_problem(m, max_seq_len, "stride")
            out += [problem] if problem else []
        return out


AnyModelConfig = ModelConfig | TriDetModelConfig | TemporalMaxerModelConfig


# ----------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ArchInfo:
    """What the rest of the package needs to know about an architecture, besides its modules.

    Attributes:
        key: short name (``tadformer demo --model``, report titles' slug).
        display: human name.
        model_name: the official ``model_name`` of its repository.
        config_cls: its ``model`` section.
        thumos_config: name of its packaged THUMOS14 I3D config.
        signature: state-dict key prefixes that only its checkpoints have (empty: none of the others').
        voting: score-voting weights after class-agnostic NMS (``'score_iou'``, or TriDet's ``'score'``).
    """

    key: str
    display: str
    model_name: str
    config_cls: type
    thumos_config: str
    signature: tuple[str, ...]
    voting: str = "score_iou"


ARCHITECTURES: dict[str, ArchInfo] = {
    info.model_name: info for info in (
        ArchInfo("actionformer", "ActionFormer", "LocPointTransformer", ModelConfig, "thumos_i3d",
                 ("backbone.stem.0.attn.", "backbone.stem.0.conv1.")),
        ArchInfo("tridet", "TriDet", "TriDet", TriDetModelConfig, "thumos_i3d_tridet",
                 ("start_head.", "backbone.stem.0.psi."), voting="score"),
        ArchInfo("temporalmaxer", "TemporalMaxer", "TemporalMaxerArchitecture", TemporalMaxerModelConfig,
                 "thumos_i3d_temporalmaxer", ()),
    )
}


def resolve_model_name(name: str) -> str | None:
    """The official ``model_name`` for an official name or a short/display name (case-insensitive)."""
    for info in ARCHITECTURES.values():
        if name.lower() in (info.model_name.lower(), info.key, info.display.lower()):
            return info.model_name
    return None


def arch_info(cfg_or_model_name: Any) -> ArchInfo:
    """The :class:`ArchInfo` of a config, a model section, or a ``model_name`` string."""
    if isinstance(cfg_or_model_name, str):
        name = resolve_model_name(cfg_or_model_name)
        if name is None:
            raise ValueError(f"unknown architecture {cfg_or_model_name!r}; known: "
                             f"{', '.join(i.key for i in ARCHITECTURES.values())}")
        return ARCHITECTURES[name]
    section = getattr(cfg_or_model_name, "model", cfg_or_model_name)
    for info in ARCHITECTURES.values():
        if isinstance(section, info.config_cls):
            return info
    return arch_info(str(getattr(cfg_or_model_name, "model_name", "LocPointTransformer")))


def model_keys(cls: type) -> list[str]:
    """The ``model`` keys of an architecture's section, in official order."""
    return [f.name for f in dataclasses.fields(cls)]


def guess_architecture(state_dict_keys: Any) -> ArchInfo | None:
    """The architecture whose parameter names a state dict has (``module.`` prefixes ignored), or None."""
    keys = [k[len("module."):] if k.startswith("module.") else k for k in map(str, state_dict_keys)]
    for info in ARCHITECTURES.values():
        if info.signature and any(k.startswith(info.signature) for k in keys):
            return info
    has_pyramid_blocks = any(k.startswith(("backbone.stem.", "backbone.branch.", "neck.")) for k in keys)
    if any(k.startswith("backbone.embd.") for k in keys) and not has_pyramid_blocks:
        return next(i for i in ARCHITECTURES.values() if not i.signature)
    return None
