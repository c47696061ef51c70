"""Weight sources: local paths, and http(s) URLs downloaded once into the cache and verified.
The URL tests use a server on 127.0.0.1 (no network)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tadformer.video.weights import WeightsSourceError, resolve_weights

PAYLOAD = b"pretend weights " * 1000


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, dict]]:
    served = tmp_path / "served"
    served.mkdir()
    (served / "rgb_imagenet.pt").write_bytes(PAYLOAD)
    hits = {"n": 0}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, directory=str(served), **kw)

        def do_GET(self) -> None:  # noqa: N802
            hits["n"] += 1
            super().do_GET()

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()


def test_local_paths(tmp_path: Path) -> None:
    f = tmp_path / "w.pt"
    f.write_bytes(b"x")
    assert resolve_weights(str(f)) == f
    with pytest.raises(FileNotFoundError, match="--rgb-weights: no such file .*missing.pt"):
        resolve_weights(tmp_path / "missing.pt", what="--rgb-weights")


def test_url_downloads_once_and_verifies(server: tuple[str, dict], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    base, hits = server
    monkeypatch.setenv("TADFORMER_CACHE", str(tmp_path / "cache"))
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    url = f"{base}/rgb_imagenet.pt#sha256={digest}"
    first = resolve_weights(url)
    assert first.read_bytes() == PAYLOAD and first.is_relative_to(tmp_path / "cache")
    assert resolve_weights(url) == first and hits["n"] == 1  # cached
    with pytest.raises(WeightsSourceError, match="expected 0000"):
        resolve_weights(f"{base}/rgb_imagenet.pt#sha256={'0' * 64}")  # another URL key: downloaded, refused
    assert not list((tmp_path / "cache" / "weights").glob("*.tmp"))
    with pytest.raises(WeightsSourceError, match="not 'sha256=<64 hex digits>'"):
        resolve_weights(f"{base}/rgb_imagenet.pt#md5=abc")
    with pytest.raises(OSError, match="downloading .*/nothing.pt failed"):
        resolve_weights(f"{base}/nothing.pt")


def test_url_without_digest_is_pinned_on_first_use(server: tuple[str, dict], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = server
    monkeypatch.setenv("TADFORMER_CACHE", str(tmp_path / "cache"))
    cached = resolve_weights(f"{base}/rgb_imagenet.pt")
    cached.write_bytes(b"tampered")
    with pytest.raises(WeightsSourceError, match="has sha256 .* expected"):
        resolve_weights(f"{base}/rgb_imagenet.pt")
