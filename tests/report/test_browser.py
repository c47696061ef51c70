"""Open report.html in headless Chromium: no console error, every image loads, the page renders."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from fake_run import make_fake_run

from tadformer.report.build import build_report
from tadformer.report.render import Image, Section, render_html

TIMEOUT_SEC = 30
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def _chromium() -> str:
    for cand in ("chromium", "/usr/bin/chromium", "chromium-browser"):
        found = shutil.which(cand)
        if found:
            return found
    pytest.skip("chromium not installed: apt-get install chromium")


def _run(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                              capture_output=True, text=True, timeout=TIMEOUT_SEC, check=False)


def _load(page: Path) -> tuple[str, list[str]]:
    """(``data-images-ok`` of the body after the load event, console lines printed by the page)."""
    proc = _run(page, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body[^>]*data-images-ok=\"([^\"]*)\"", proc.stdout)
    assert body is not None, "the load script did not run (no data-images-ok on <body>)"
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return body.group(1), console


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _chromium()
    html_path, _ = build_report(make_fake_run(tmp_path_factory.mktemp("browser")))
    return html_path


def test_report_loads_without_errors(report_html: Path) -> None:
    images_ok, console = _load(report_html)
    assert images_ok == "10/10"
    assert console == []


def test_checks_catch_a_broken_image_and_a_console_error(tmp_path: Path) -> None:
    """Control: the same checks fail on a page with an undecodable image and a console error."""
    _chromium()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    page = render_html("control", [Section("broken", [Image(bad, "broken image")])])
    page = page.replace("</body>", "<script>console.error('control error');</script></body>")
    path = tmp_path / "control.html"
    path.write_text(page, encoding="utf-8")
    images_ok, console = _load(path)
    assert images_ok == "0/1"
    assert any("control error" in line for line in console)


def test_screenshot_is_not_blank(report_html: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    proc = _run(report_html, "--window-size=1280,4000", "--virtual-time-budget=5000", f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = mpimg.imread(str(shot))
    assert img.shape[:2] == (4000, 1280)
    assert img[..., :3].std() > 0.05
    # the page is long enough to fill the window: its last fifth is not empty either
    assert img[3200:, :, :3].std() > 0.02
