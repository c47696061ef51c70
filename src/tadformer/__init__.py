"""tadformer: ActionFormer temporal action localization, faithful to the official numbers.

Example:
    >>> from tadformer import load_config, build_model
    >>> cfg = load_config("configs/thumos_i3d.yaml")
    >>> model = build_model(cfg)  # the official THUMOS14 I3D detector (29,251,612 parameters)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "build_model", "load_config"]


def __getattr__(name: str) -> Any:
    # lazy re-exports keep `import tadformer` (and the CLI's --help) fast
    if name == "load_config":
        from tadformer.config import load_config

        return load_config
    if name == "build_model":
        from tadformer.model import build_model

        return build_model
    raise AttributeError(f"module 'tadformer' has no attribute {name!r}")
