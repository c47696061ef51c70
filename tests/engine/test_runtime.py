"""Device resolution, seeding and single-process fallbacks."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from tadformer.engine.runtime import (
    get_rank,
    get_world_size,
    is_main_process,
    resolve_device,
    seed_everything,
    synchronize,
)


@pytest.fixture
def restore_determinism(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """seed_everything(deterministic=True) changes process-wide flags: put them back afterwards."""
    for name in ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.setenv(name, "placeholder")  # monkeypatch restores the original value (or absence)
    flags = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = flags[2], flags[3]


def test_resolve_device_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_resolve_device_cuda_unavailable(spec: str) -> None:
    with pytest.raises(ValueError, match=f"'{spec}' requested but CUDA is not available"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu"])
def test_resolve_device_rejects_unknown(spec: str) -> None:
    with pytest.raises(ValueError, match="expected 'auto', 'cpu', 'cuda' or 'cuda:<index>'"):
        resolve_device(spec)


def test_seed_everything_reproduces_all_streams(restore_determinism: None) -> None:
    gen = seed_everything(1234567891)
    assert gen is torch.default_generator  # official: the loader shuffles from the global stream
    first = (torch.rand(4).tolist(), torch.randperm(10, generator=gen).tolist(), np.random.rand(3).tolist(),
             random.random())
    seed_everything(1234567891)
    second = (torch.rand(4).tolist(), torch.randperm(10, generator=gen).tolist(), np.random.rand(3).tolist(),
              random.random())
    assert first == second
    seed_everything(7, deterministic=False)
    assert torch.rand(4).tolist() != first[0]
    assert torch.are_deterministic_algorithms_enabled()  # set by the first (deterministic) call


def test_seed_matches_plain_manual_seed(restore_determinism: None) -> None:
    seed_everything(1234567891, deterministic=False)
    ours = (torch.rand(3), np.random.rand(2), random.random())
    torch.manual_seed(1234567891)
    np.random.seed(1234567891)
    random.seed(1234567891)
    torch.testing.assert_close(ours[0], torch.rand(3), rtol=0, atol=0)
    np.testing.assert_array_equal(ours[1], np.random.rand(2))
    assert ours[2] == random.random()


def test_seed_rejects_negative() -> None:
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_single_process_defaults() -> None:
    assert not torch.distributed.is_available() or not torch.distributed.is_initialized()
    assert (get_rank(), get_world_size(), is_main_process()) == (0, 1, True)


def test_synchronize_is_noop_on_cpu() -> None:
    synchronize("cpu")
    synchronize(torch.device("cpu"))
