"""Shared fixtures: where the shared material and golden files live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
GOLDEN_DIR = REPO_ROOT / "tests" / "golden"  # carried in the repository (tests/golden/README.md)
THUMOS_JSON = SHARED_DIR / "data" / "thumos14" / "thumos14.json"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The official golden files, carried in the repository: never skipped."""
    if not (GOLDEN_DIR / "SHA256SUMS").is_file():
        pytest.fail(f"golden files missing at {GOLDEN_DIR}: the repository is incomplete")
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def thumos_json() -> Path:
    """The real THUMOS14 annotation file from ../shared (never copied into the repo)."""
    if not THUMOS_JSON.is_file():
        pytest.skip(f"THUMOS14 annotations not found at {THUMOS_JSON} (../shared is not beside the repo)")
    return THUMOS_JSON


# A tiny recipe on top of the generated THUMOS config: small widths, short sequences, 2+1 epochs.
TINY_OVERRIDES = (
    "model.embd_dim=16", "model.fpn_dim=16", "model.head_dim=16", "dataset.max_seq_len=576",
    "opt.epochs=2", "opt.warmup_epochs=1", "opt.learning_rate=0.001", "loader.batch_size=2",
    "loader.num_workers=0",
)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic THUMOS-shaped dataset (6 train + 3 test videos, 16-dim features)."""
    from tadformer.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("tiny_synth")
    return generate_dataset(root, train_videos=6, test_videos=3, input_dim=16, seed=3, duration_scale=0.15)


@pytest.fixture(scope="session")
def tiny_cfg(tiny_synth):
    """The tiny training config for :func:`tiny_synth`."""
    from tadformer.config import load_config

    return load_config(tiny_synth.config_file, TINY_OVERRIDES)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread: the golden files were made that way, and on a shared 2-core machine
    oversubscribed OpenMP threads make training steps many times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
