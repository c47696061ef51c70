"""Where the I3D weight files come from: a local path, or an http(s) URL downloaded once into a cache.

A URL may carry the expected digest as a fragment, ``https://host/rgb_imagenet.pt#sha256=<64 hex>``;
the download is then verified before it is kept. Without a fragment the first download's sha256 is
recorded next to the cached file and every later use is checked against it (trust on first use).
The cache lives in ``$TADFORMER_CACHE/weights`` (default ``~/.cache/tadformer/weights``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

_SHA_FRAGMENT = re.compile(r"^sha256=([0-9a-fA-F]{64})$")


class WeightsSourceError(ValueError):
    """A weight source that cannot be used (bad URL, digest mismatch)."""


def cache_dir() -> Path:
    """The folder downloaded weight files are kept in."""
    root = os.environ.get("TADFORMER_CACHE") or Path.home() / ".cache" / "tadformer"
    return Path(root) / "weights"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_url(spec: str) -> bool:
    return spec.startswith(("https://", "http://"))


def resolve_weights(spec: str | Path, *, what: str = "weights") -> Path:
    """A local file for ``spec``: the path itself, or the cached download of a URL.

    Args:
        spec: a path, or an ``http(s)://`` URL (optionally ``#sha256=<hex>``).
        what: how messages name the argument (e.g. ``"--rgb-weights"``).

    Raises:
        FileNotFoundError: a local path that does not exist.
        WeightsSourceError: a malformed fragment, or a download whose sha256 differs from the expected one.
        OSError: the download failed.
    """
    text = str(spec)
    if not is_url(text):
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{what}: no such file {path}")
        return path
    url, _, fragment = text.partition("#")
    expected = None
    if fragment:
        match = _SHA_FRAGMENT.match(fragment)
        if not match:
            raise WeightsSourceError(f"{what}: URL fragment {fragment!r} is not 'sha256=<64 hex digits>'")
        expected = match.group(1).lower()
    name = Path(urllib.parse.urlparse(url).path).name or "weights.pt"
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    target = cache_dir() / f"{key}-{name}"
    recorded = target.with_name(target.name + ".sha256")
    if target.is_file():
        actual = file_sha256(target)
        known = expected or (recorded.read_text(encoding="utf-8").strip() if recorded.is_file() else None)
        if known is None or actual == known:
            return target
        raise WeightsSourceError(f"{what}: cached {target} has sha256 {actual}, expected {known}; delete it to "
                                 f"download again")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (http(s) only)
            shutil.copyfileobj(resp, out, length=1 << 20)
        actual = file_sha256(tmp_name)
        if expected and actual != expected:
            raise WeightsSourceError(f"{what}: {url} downloaded with sha256 {actual}, expected {expected}")
        os.replace(tmp_name, target)
    except OSError as exc:
        raise OSError(f"{what}: downloading {url} failed: {exc}") from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    recorded.write_text(actual + "\n", encoding="utf-8")
    print(f"downloaded {url} -> {target} (sha256 {actual})")
    return target
