"""The golden files carried in the repository are intact: every file matches ``SHA256SUMS``, no file
is missing from it, and it agrees with the generator's own ``manifest.json`` records. Files stored in
pieces (``NAME.partN``, to keep every tracked file under 1 MB) are checked after joining them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import GOLDEN_DIR, assemble_golden, golden_parts

UNLISTED = {"SHA256SUMS", "README.md"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listed() -> dict[str, str]:
    lines = (GOLDEN_DIR / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    pairs = [ln.split(maxsplit=1) for ln in lines if ln.strip()]
    return {name.strip(): digest for digest, name in pairs}


def test_every_golden_file_matches_its_sha256() -> None:
    assemble_golden()
    listed = _listed()
    parts = {p for ps in golden_parts().values() for p in ps}
    on_disk = {p.relative_to(GOLDEN_DIR).as_posix() for p in GOLDEN_DIR.rglob("*")
               if p.is_file() and p not in parts} - UNLISTED
    missing = sorted(set(listed) - on_disk)
    assert on_disk == set(listed), f"not listed: {sorted(on_disk - set(listed))}; missing: {missing}"
    bad = [name for name, digest in listed.items() if _sha256(GOLDEN_DIR / name) != digest]
    assert not bad, f"golden files changed or damaged: {bad}"


@pytest.mark.parametrize("manifest", ["manifest.json", "trajectory/manifest.json", "datasets/manifest.json",
                                      "i3d/manifest.json", "variants/manifest.json"])
def test_sums_agree_with_the_generators_manifest(manifest: str) -> None:
    """The generator recorded a sha256 for each file it wrote; our copies must be those very files."""
    record = json.loads((GOLDEN_DIR / manifest).read_text(encoding="utf-8"))
    folder = Path(manifest).parent
    listed = _listed()
    assert record["files"], manifest
    for name, entry in record["files"].items():
        rel = (folder / name).as_posix()
        assert listed.get(rel) == entry["sha256"], f"{rel} differs from the generator's {manifest}"


def test_split_files_are_tracked_small_and_joined_exactly() -> None:
    groups = golden_parts()
    assert len(groups) == 4, sorted(map(str, groups))
    for target, parts in groups.items():
        assert all(p.stat().st_size <= 1_000_000 for p in parts), target
        assert [int(p.name.rpartition(".part")[2]) for p in parts] == list(range(len(parts)))
    assert sorted(assemble_golden()) == sorted(groups)
