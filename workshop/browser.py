"""Headless Chromium for the screenshots and the browser tests: the system's, never a downloaded one."""
from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from workshop.services import Service, free_port, http_ready

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def chromium_path() -> str | None:
    """The system's Chromium, if there is one."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def why_no_browser() -> str | None:
    """A one-line reason the browser tests cannot run here, or None."""
    if chromium_path() is None:
        return "Chromium is not installed (apt install chromium, or brew install --cask chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make install)"
    return None


@contextmanager
def browser_page(width: int = 1280, height: int = 800):
    """A fresh page in headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


@contextmanager
def jupyterlab(token: str = "workshop-test"):
    """JupyterLab on the notebooks, as `make lab` starts it (plus a known port and token)."""
    port = free_port()
    argv = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}", str(NOTEBOOKS)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    base = f"http://127.0.0.1:{port}"
    with Service("jupyterlab", argv) as lab:
        lab.wait_until(http_ready(f"{base}/api/status?token={token}"), timeout=60)
        yield base, token
