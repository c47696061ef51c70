"""``--hf-repo`` offline: a pre-filled Hugging Face cache is found with HF_HUB_OFFLINE=1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")


def _fill_cache(hf_home: Path, repo: str, files: dict[str, Path]) -> None:
    """Lay out the cache exactly as huggingface_hub does: refs/main -> snapshots/<commit>/<file>."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)
    for name, src in files.items():
        shutil.copy(src, snap / name)


def test_hf_repo_from_offline_cache(tiny_cfg, tmp_path: Path, monkeypatch, capsys) -> None:
    import torch

    from tadformer.cli import main
    from tadformer.config import dump_config
    from tadformer.engine.train import FitOptions, fit

    torch.set_num_threads(1)
    run = tmp_path / "run"
    ckpt = fit(tiny_cfg, run, FitOptions(device="cpu", progress=False, max_steps=1))
    yaml_path = dump_config(tiny_cfg, tmp_path / "tiny.yaml")
    hf_home = tmp_path / "hf"
    _fill_cache(hf_home, "someone/tiny-actionformer", {"checkpoint_ema.pth.tar": ckpt, "tiny.yaml": yaml_path})
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hf_home / "hub"), raising=False)

    from tadformer.hub import download_checkpoint

    got_ckpt, got_cfg = download_checkpoint("someone/tiny-actionformer")
    assert got_ckpt.name == "checkpoint_ema.pth.tar" and got_cfg is not None and got_cfg.name == "tiny.yaml"

    db = json.loads(Path(str(tiny_cfg.dataset.json_file)).read_text())["database"]
    vid = next(k for k, v in db.items() if v["subset"] == "Test")
    feat = Path(str(tiny_cfg.dataset.feat_folder)) / f"{vid}.npy"
    out = tmp_path / "det.json"
    assert main(["infer", "--hf_repo", "someone/tiny-actionformer", "--feat", str(feat), "--json", str(out),
                 "--device", "cpu"]) == 0
    assert vid in json.loads(out.read_text())["results"]

    assert main(["infer", "--hf-repo", "nobody/not-cached", "--feat", str(feat)]) == 1
    assert "could not get nobody/not-cached" in capsys.readouterr().err
