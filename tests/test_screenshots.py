"""`make screenshots` makes the README's pictures from the running kit."""
from __future__ import annotations

import struct

import pytest

from workshop import screenshots
from workshop.browser import why_no_browser


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.mark.skipif(why_no_browser() is not None, reason=f"{why_no_browser()}: screenshot test skipped")
def test_screenshots_are_made_from_the_running_kit(tmp_path):
    assert screenshots.run_screenshots(tmp_path) == 0
    for name in ("inspector.png", "demo-summary.png", "queue-latency.png"):
        width, height = png_size(tmp_path / name)
        assert width > 600 and height > 150, name


def test_without_a_browser_the_command_says_why(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(screenshots, "why_no_browser", lambda: "Chromium is not installed (apt install chromium)")
    assert screenshots.run_screenshots(tmp_path) == 1
    assert "Cannot take screenshots: Chromium is not installed" in capsys.readouterr().err


def test_the_readme_shows_the_pictures():
    readme = (screenshots.OUT.parent.parent.parent / "README.md").read_text()
    for name in ("inspector.png", "demo-summary.png", "queue-latency.png", "bench-latency.png"):
        assert f"workshop/guide/img/{name}" in readme
        assert (screenshots.OUT / name).exists()
