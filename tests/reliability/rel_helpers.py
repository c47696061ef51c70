"""Shared helpers of the reliability suite (imported by its test modules; not a test module)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import TINY_OVERRIDES
from tadformer.cli import main


def sets(*extra: str) -> list[str]:
    """``--set`` flags for the tiny recipe plus ``extra`` overrides."""
    out: list[str] = []
    for item in (*TINY_OVERRIDES, *extra):
        out += ["--set", item]
    return out


def run_cli(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``tadformer ARGS`` in-process; return (exit code, stderr). Never a traceback."""
    capsys.readouterr()
    code = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def assert_error(code: int, err: str, expected_code: int, *fragments: str) -> None:
    """The run failed with ``expected_code`` and one ``tadformer: error:`` message holding every fragment."""
    assert code == expected_code, (code, err)
    lines = [ln for ln in err.splitlines() if ln.startswith("tadformer: error:")]
    assert len(lines) == 1, err
    message = err[err.index("tadformer: error:"):]
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def copy_dataset(tiny_synth: Any, dest: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A private copy of the tiny dataset: (annotation json, feature folder, parsed json)."""
    feats = dest / "features"
    shutil.copytree(tiny_synth.feat_folder, feats)
    ann = dest / "annotations.json"
    shutil.copy(tiny_synth.json_file, ann)
    return ann, feats, json.loads(ann.read_text())


def train_args(tiny_synth: Any, run_dir: Path, *extra_sets: str, extra: Sequence[str] = ()) -> list[str]:
    """``train`` on the tiny dataset (CPU, no progress bar) with extra overrides and flags."""
    return ["train", str(tiny_synth.config_file), "--out", str(run_dir), "--no-progress", "--device", "cpu",
            *sets(*extra_sets), *extra]


def train_video_ids(data: dict[str, Any]) -> list[str]:
    """Training-split video ids of the tiny dataset, in json order (the dataset's record order)."""
    return [vid for vid, entry in data["database"].items() if entry["subset"].lower() == "validation"]


def eval_video_ids(data: dict[str, Any]) -> list[str]:
    """Evaluation-split video ids, in json order."""
    return [vid for vid, entry in data["database"].items() if entry["subset"].lower() == "test"]



@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Single-threaded torch in this suite's tests (faster on a loaded 2-core machine, and exact)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
