"""Nothing is lost: a real training subprocess is SIGKILLed while a checkpoint is being written and at a
random moment, stopped with SIGTERM, and resumed each time; the final weights equal those of an
uninterrupted run exactly. SIGINT saves a resumable checkpoint. A full disk while saving keeps the
previous checkpoint and reports the error."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from rel_helpers import (
    assert_error,
    one_thread,  # noqa: F401  (autouse)
    run_cli,
    train_args,
)

import tadformer.engine.checkpoint as checkpoint_mod
from tadformer.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals and /proc/self/fd")

EPOCHS = "opt.epochs=3"  # 3 + 1 warmup epochs x 3 steps = 12 optimiser steps
TOTAL_STEPS = 12
FINAL = "epoch_004.pth.tar"
CHILD = Path(__file__).with_name("slow_save_child.py")
TIMEOUT_SEC = 180.0


def _records(run: Path) -> list[dict[str, Any]]:
    """Training log records without the wall-clock field."""
    lines = (run / "train_log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k != "time_sec"} for ln in lines]


def _assert_same_weights(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["epoch"] == cb["epoch"]
    for key in ("state_dict", "state_dict_ema"):
        assert ca[key].keys() == cb[key].keys()
        for name, value in ca[key].items():
            torch.testing.assert_close(cb[key][name], value, atol=0, rtol=0, msg=f"{key}/{name}")
    assert ca["loss_normalizer"] == cb["loss_normalizer"]


class Child:
    """One ``train`` subprocess writing its output to files (no pipe can fill up)."""

    def __init__(self, tiny_synth: Any, run: Path, tag: str, resume: bool, slow_save_from: int = 0) -> None:
        cmd = [sys.executable, str(CHILD)] if slow_save_from else [sys.executable, "-m", "tadformer"]
        args = train_args(tiny_synth, run, EPOCHS, extra=["--resume"] if resume else [])
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   SLOW_FSYNC_FROM=str(slow_save_from))
        env.pop("TADFORMER_DEBUG", None)
        self.out_path, self.err_path = run.parent / f"{tag}.out", run.parent / f"{tag}.err"
        self.started_ns = time.time_ns()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*cmd, *args], stdout=out, stderr=err, env=env)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT_SEC
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"training exited ({self.proc.returncode}) before {what}:\n{self.stderr}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.005)

    def signal(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=TIMEOUT_SEC)


def _new_steps_logged(run: Path, child: Child, at_least: int) -> Callable[[], bool]:
    """True once the child (not an earlier process) has logged optimiser step ``at_least``."""
    log = run / "train_log.jsonl"

    def check() -> bool:
        try:
            if log.stat().st_mtime_ns <= child.started_ns:
                return False
            lines = log.read_text().splitlines()
        except FileNotFoundError:
            return False
        return bool(lines) and lines[-1].endswith("}") and json.loads(lines[-1])["step"] >= at_least

    return check


def _global_step(last: Path) -> int:
    return int(load_checkpoint(last)["extra"]["global_step"])


def test_kills_and_sigterm_then_resume_equal_an_uninterrupted_run(tiny_synth, tmp_path: Path) -> None:
    rng = random.Random(20240611)
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth.tar"
    # the uninterrupted run, started the same way and running alongside (a run inside the pytest process
    # differs from a subprocess in the last float32 bits, whether interrupted or not)
    (tmp_path / "reference").mkdir()
    reference = Child(tiny_synth, tmp_path / "reference" / "run", "reference", resume=False)

    # 1. SIGKILL while the second checkpoint (end of epoch 2) is being written: epoch 1's stays intact
    child = Child(tiny_synth, run, "kill_saving", resume=False, slow_save_from=2)
    tmp_files = lambda: list(last.parent.glob(".last.pth.tar.*.tmp"))  # noqa: E731
    child.wait_for(lambda: last.is_file() and bool(tmp_files()), "the temp file of the second checkpoint")
    before = last.read_bytes()
    time.sleep(rng.uniform(0.0, 0.2))
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL
    assert tmp_files(), "the killed save should have left its temp file, not touched last.pth.tar"
    assert last.read_bytes() == before
    assert load_checkpoint(last)["epoch"] == 1
    step = _global_step(last)

    # 2. SIGKILL at a random moment after a random number of steps: the checkpoint on disk still loads
    child = Child(tiny_synth, run, "kill_random", resume=True)
    child.wait_for(_new_steps_logged(run, child, step + rng.randint(1, 3)), "a few steps")
    time.sleep(rng.uniform(0.0, 0.3))
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL
    step = _global_step(last)
    assert load_checkpoint(last)["epoch"] in (1, 2, 3)

    # 3. SIGTERM: a resumable checkpoint at the step reached, exit code 130, a one-line message
    child = Child(tiny_synth, run, "sigterm", resume=True)
    child.wait_for(_new_steps_logged(run, child, step + 1), f"a step after {step}")
    assert child.signal(signal.SIGTERM) == 130, child.stderr
    assert f"stopped by signal {int(signal.SIGTERM)}" in child.stderr and "--resume" in child.stderr
    assert "Traceback" not in child.stderr
    stopped = load_checkpoint(last)
    assert stopped["extra"]["global_step"] > step
    assert len(_records(run)) == stopped["extra"]["global_step"]

    # 4. resume to the end: same weights, EMA, loss normaliser and log as the uninterrupted run
    child = Child(tiny_synth, run, "finish", resume=True)
    assert child.proc.wait(timeout=TIMEOUT_SEC) == 0, child.stderr
    assert reference.proc.wait(timeout=TIMEOUT_SEC) == 0, reference.stderr
    ref_run = tmp_path / "reference" / "run"
    _assert_same_weights(ref_run / "checkpoints" / FINAL, run / "checkpoints" / FINAL)
    assert _records(run) == _records(ref_run)
    assert len(_records(run)) == TOTAL_STEPS


def test_killed_during_its_first_save_then_resumed_with_the_same_command(tiny_synth, tmp_path: Path) -> None:
    """``--resume`` on every launch: the first launch has nothing to resume, is SIGKILLed while its first
    checkpoint is being written (only the temp file exists), and the same command line finishes the run."""
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    (tmp_path / "reference").mkdir()
    reference = Child(tiny_synth, tmp_path / "reference" / "run", "reference", resume=False)

    child = Child(tiny_synth, run, "first_launch", resume=True, slow_save_from=1)
    child.wait_for(lambda: bool(list(ckpts.glob(".last.pth.tar.*.tmp"))), "the temp file of the first checkpoint")
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL
    assert "starting from scratch" in child.out_path.read_text()
    assert [p.name for p in ckpts.iterdir() if not p.name.endswith(".tmp")] == []  # no complete checkpoint

    child = Child(tiny_synth, run, "relaunch", resume=True)
    assert child.proc.wait(timeout=TIMEOUT_SEC) == 0, child.stderr
    out = child.out_path.read_text()
    assert "no complete checkpoint" in out and "removed 1 temporary file" in out
    assert not list(ckpts.glob("*.tmp")) and not list(ckpts.glob(".*.tmp"))
    assert reference.proc.wait(timeout=TIMEOUT_SEC) == 0, reference.stderr
    ref_run = tmp_path / "reference" / "run"
    _assert_same_weights(ref_run / "checkpoints" / FINAL, ckpts / FINAL)
    assert _records(run) == _records(ref_run)


def test_sigint_saves_a_resumable_checkpoint(tiny_synth, tmp_path: Path, capsys) -> None:
    """In-process (cheaper than a subprocess): SIGINT -> exit 130 and last.pth.tar; --resume continues."""
    run = tmp_path / "run"
    log = run / "train_log.jsonl"

    def interrupt_at_step_2() -> None:
        deadline = time.monotonic() + TIMEOUT_SEC
        while time.monotonic() < deadline:
            if log.is_file() and len(log.read_text().splitlines()) >= 2:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.005)

    previous = signal.signal(signal.SIGINT, lambda *_: None)  # a late signal must not stop pytest
    try:
        thread = threading.Thread(target=interrupt_at_step_2, daemon=True)
        thread.start()
        code, err = run_cli(train_args(tiny_synth, run), capsys)
        thread.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130, err
    assert f"stopped by signal {int(signal.SIGINT)}" in err and "last.pth.tar" in err
    stopped = load_checkpoint(run / "checkpoints" / "last.pth.tar")
    step = int(stopped["extra"]["global_step"])
    assert 2 <= step < 9 and len(_records(run)) == step
    code, err = run_cli(train_args(tiny_synth, run, extra=["--resume", "--max-steps", str(step + 1)]), capsys)
    assert code == 0, err
    assert load_checkpoint(run / "checkpoints" / "last.pth.tar")["extra"]["global_step"] == step + 1
    assert [r["step"] for r in _records(run)] == list(range(1, step + 2))


def test_full_disk_keeps_the_previous_checkpoint(tiny_synth, tmp_path: Path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth.tar"
    real_save = torch.save
    calls = {"n": 0}

    def save_until_disk_full(obj: Any, handle: Any, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint: write part of it, then the disk is full
            handle.write(b"PK\x03\x04 partial checkpoint bytes")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(checkpoint_mod.torch, "save", save_until_disk_full)
    code, err = run_cli(train_args(tiny_synth, run), capsys)
    assert_error(code, err, 1, "could not write checkpoint", str(last), "No space left on device", "disk is full")
    assert calls["n"] == 2
    assert load_checkpoint(last)["epoch"] == 1  # the previous checkpoint, intact
    assert not list(last.parent.glob("*.tmp")) and not list(last.parent.glob(".*.tmp"))

    monkeypatch.setattr(checkpoint_mod.torch, "save", real_save)  # space was freed: resume works
    code, err = run_cli(train_args(tiny_synth, run, extra=["--resume", "--max-steps", "4"]), capsys)
    assert code == 0, err
    assert load_checkpoint(last)["extra"]["global_step"] == 4
