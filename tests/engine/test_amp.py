"""Mixed precision (off / bf16 / fp16) and the GPU-only paths (TF32, pinned memory, fp16 scaler)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tadformer.engine.runtime import Precision, configure_cuda, make_precision
from tadformer.engine.train import FitOptions, fit

gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _log(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "train_log.jsonl").read_text().splitlines()]


def test_precision_modes_are_checked() -> None:
    assert make_precision("off", "cpu").dtype is None
    bf16 = make_precision("BF16", "cpu")
    assert (bf16.mode, bf16.dtype, bf16.scaler) == ("bf16", torch.bfloat16, None)
    with pytest.raises(ValueError, match="--amp fp16 needs a CUDA device"):
        make_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="unknown mixed-precision mode 'fp8'"):
        make_precision("fp8", "cpu")


def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    import tadformer.engine.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="no AVX-512 BF16/AMX"):
        make_precision("bf16", "cpu")
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_precision("bf16", "cpu")
        make_precision("off", "cpu")


def test_autocast_context() -> None:
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with Precision("bf16", "cpu").autocast():
        assert lin(x).dtype == torch.bfloat16
    with Precision().autocast():
        assert lin(x).dtype == torch.float32


@pytest.fixture(scope="module")
def fp32_and_bf16(tiny_cfg, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], list[dict]]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("amp")
    fit(tiny_cfg, root / "fp32", FitOptions(device="cpu", progress=False, max_steps=3))
    fit(tiny_cfg, root / "bf16", FitOptions(device="cpu", progress=False, max_steps=3, amp="bf16"))
    return _log(root / "fp32"), _log(root / "bf16")


def test_bf16_on_cpu_trains_finite_and_close_to_fp32(fp32_and_bf16: tuple[list[dict], list[dict]]) -> None:
    fp32, bf16 = fp32_and_bf16
    assert len(bf16) == 3
    for b in bf16:
        for key in ("cls_loss", "reg_loss", "final_loss", "grad_norm"):
            assert torch.isfinite(torch.tensor(b[key])), (b["step"], key)
    # bf16 keeps 8 mantissa bits: the forward differs (so autocast is really on), by about 1e-2 relative
    assert bf16[0]["final_loss"] != fp32[0]["final_loss"]
    assert bf16[0]["final_loss"] == pytest.approx(fp32[0]["final_loss"], rel=5e-2)
    assert bf16[0]["num_pos"] == fp32[0]["num_pos"]  # label assignment does not depend on precision


def test_configure_cuda_toggles_tf32() -> None:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        configure_cuda(tf32=True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        configure_cuda(tf32=False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.fixture
def restore_tf32() -> Iterator[None]:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@gpu
@needs_cuda
@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_cuda_mixed_precision_trains_finite(tiny_cfg, tmp_path: Path, amp: str, restore_tf32: None) -> None:
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    fit(tiny_cfg, tmp_path, FitOptions(device="cuda", progress=False, max_steps=3, amp=amp, tf32=True))
    records = _log(tmp_path)
    assert len(records) <= 3 and all(torch.isfinite(torch.tensor(r["final_loss"])) for r in records)
    assert torch.backends.cuda.matmul.allow_tf32


@gpu
@needs_cuda
def test_cuda_fp32_matches_cpu_first_step(tiny_cfg, tmp_path: Path) -> None:
    fit(tiny_cfg, tmp_path / "cpu", FitOptions(device="cpu", progress=False, max_steps=1))
    fit(tiny_cfg, tmp_path / "gpu", FitOptions(device="cuda", progress=False, max_steps=1))
    a, b = _log(tmp_path / "cpu")[0], _log(tmp_path / "gpu")[0]
    assert b["final_loss"] == pytest.approx(a["final_loss"], rel=1e-5)


@gpu
@needs_cuda
def test_loader_pins_memory_for_cuda(tiny_cfg) -> None:
    from tadformer.engine.batches import SeededItems, batch_keys, build_train_dataset, epoch_batches, train_loader

    dataset, _ = build_train_dataset(tiny_cfg)
    keys = batch_keys(epoch_batches(len(dataset), 2, 0, 0), 0)
    batch = next(iter(train_loader(SeededItems(dataset, 0), keys, tiny_cfg, torch.device("cuda"))))
    assert batch.feats.is_pinned()
    assert not next(iter(train_loader(SeededItems(dataset, 0), keys, tiny_cfg, torch.device("cpu")))).feats.is_pinned()
