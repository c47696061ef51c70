"""Command-line interface (filled in by the engine work)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tadformer`` command."""
    return 0
