"""Which architecture a raw config selects, and the errors for keys of another architecture.

Kept apart from :mod:`tadformer.config` (the dataclasses, loading and dumping) and :mod:`tadformer.config_arch`
(the model sections): this is the one place that reads ``model_name`` or infers it from the model keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from tadformer.config_arch import ARCHITECTURES, ModelConfig, resolve_model_name
from tadformer.config_validate import ConfigError
from tadformer.config_validate import type_hints as _hints

__all__ = ["MODEL_CLASSES", "foreign_key_error", "model_section_class"]

MODEL_CLASSES: tuple[type, ...] = tuple(info.config_cls for info in ARCHITECTURES.values())


def _arch_label(cls: Any) -> str:
    info = next(i for i in ARCHITECTURES.values() if i.config_cls is cls)
    return f"{info.display} (model_name: {info.model_name})"


def foreign_key_error(key: str, section_cls: Any, prefix: str) -> ConfigError | None:
    """The error for a ``model`` key that another architecture has and ``section_cls`` has not (else None)."""
    owners = [c for c in MODEL_CLASSES if c is not section_cls and key in _hints(c)]
    if not owners:
        return None
    return ConfigError(f"config key '{prefix}{key}' belongs to {_arch_label(owners[0])}, not to "
                       f"{_arch_label(section_cls)}: a config cannot mix the model keys of two architectures")


def _exclusive_keys(cls: Any) -> set[str]:
    """Model keys only this architecture has."""
    others: set[str] = set()
    for other in MODEL_CLASSES:
        if other is not cls:
            others |= set(_hints(other))
    return set(_hints(cls)) - others


def model_section_class(raw: Mapping[str, Any]) -> Any:
    """The ``model`` dataclass a raw config dict selects.

    ``model_name`` decides when present (official names such as ``TriDet``, or the short names
    ``actionformer`` / ``tridet`` / ``temporalmaxer``). Without it (TriDet's own YAMLs rely on their
    loader's default), the architecture whose own keys the ``model`` section uses is chosen, else
    ActionFormer.

    Raises:
        ConfigError: unknown ``model_name``, or a ``model`` section mixing keys of two architectures.
    """
    name = raw.get("model_name")
    if name is not None:
        if not isinstance(name, str):
            raise ConfigError(f"config key 'model_name': expected str, got {type(name).__name__} {name!r}")
        official = resolve_model_name(name)
        if official is None:
            known = ", ".join(f"{i.model_name} ({i.key})" for i in ARCHITECTURES.values())
            close = difflib.get_close_matches(name, [i.model_name for i in ARCHITECTURES.values()]
                                              + [i.key for i in ARCHITECTURES.values()], n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"config key 'model_name' = {name!r} is not a known architecture; {hint}known: {known}")
        return ARCHITECTURES[official].config_cls
    model = raw.get("model")
    keys = [k for k in model if isinstance(k, str)] if isinstance(model, Mapping) else []
    found = {cls: sorted(set(keys) & _exclusive_keys(cls)) for cls in MODEL_CLASSES}
    found = {cls: ks for cls, ks in found.items() if ks}
    if len(found) > 1:
        parts = [f"'model.{ks[0]}' is {_arch_label(cls)}'s" for cls, ks in found.items()]
        raise ConfigError(f"the model section mixes keys of two architectures: {' and '.join(parts)}; set "
                          f"model_name and keep only that architecture's keys")
    return next(iter(found), ModelConfig)
