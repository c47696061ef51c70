"""tadformer: ActionFormer temporal action localization, faithful to the official numbers."""

from __future__ import annotations

__version__ = "0.1.0"
