"""Shared fixtures: where the shared material and golden files live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
GOLDEN_DIR = SHARED_DIR / "golden"
THUMOS_JSON = SHARED_DIR / "data" / "thumos14" / "thumos14.json"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The official golden files; tests using them skip with a reason when ../shared is absent."""
    if not GOLDEN_DIR.is_dir():
        pytest.skip(f"golden files not found at {GOLDEN_DIR} (../shared is not beside the repo)")
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def thumos_json() -> Path:
    """The real THUMOS14 annotation file from ../shared (never copied into the repo)."""
    if not THUMOS_JSON.is_file():
        pytest.skip(f"THUMOS14 annotations not found at {THUMOS_JSON} (../shared is not beside the repo)")
    return THUMOS_JSON
