"""Shared fixtures: where the shared material and golden files live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
GOLDEN_DIR = REPO_ROOT / "tests" / "golden"  # carried in the repository (tests/golden/README.md)
THUMOS_JSON = SHARED_DIR / "data" / "thumos14" / "thumos14.json"


def golden_parts(root: Path = GOLDEN_DIR) -> dict[Path, list[Path]]:
    """Golden files stored in pieces (``NAME.part0``, ``NAME.part1``, ...): the repository keeps no file
    over 1 MB, so the four larger golden files are split byte for byte; target -> parts in order."""
    groups: dict[Path, list[Path]] = {}
    for part in root.rglob("*.part[0-9]*"):
        stem, _, index = part.name.rpartition(".part")
        groups.setdefault(part.with_name(stem), []).append(part)
    return {t: sorted(ps, key=lambda p: int(p.name.rpartition(".part")[2])) for t, ps in groups.items()}


def assemble_golden(root: Path = GOLDEN_DIR) -> list[Path]:
    """Join each split golden file into ``NAME`` (git-ignored; written atomically, skipped when the
    joined file already has the parts' bytes). Returns the joined files."""
    joined = []
    for target, parts in golden_parts(root).items():
        data = b"".join(p.read_bytes() for p in parts)
        if not (target.is_file() and target.read_bytes() == data):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        joined.append(target)
    return joined


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The official golden files, carried in the repository: never skipped."""
    if not (GOLDEN_DIR / "SHA256SUMS").is_file():
        pytest.fail(f"golden files missing at {GOLDEN_DIR}: the repository is incomplete")
    assemble_golden()
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
