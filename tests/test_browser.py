"""Seen as a person sees it: JupyterLab and the inspector page in headless Chromium."""
from __future__ import annotations

import time

import pytest
import requests

from tests.conftest import SECRET
from workshop.browser import NOTEBOOKS, browser_page, jupyterlab, why_no_browser
from workshop.sender import make_sms, signed

pytestmark = pytest.mark.skipif(why_no_browser() is not None, reason=f"{why_no_browser()}: browser tests skipped")


def open_notebook(page, base: str, token: str, name: str) -> None:
    """Open a notebook and wait until its kernel is started and idle."""
    workspace = name.split("-")[0]  # a fresh workspace: only this notebook open
    page.goto(f"{base}/lab/workspaces/w{workspace}/tree/{name}?token={token}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_selector(".jp-Toolbar-kernelName:has-text('Python 3 (ipykernel)')")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sessions = requests.get(f"{base}/api/sessions?token={token}", timeout=5).json()
        if any(s["path"].endswith(name) and s["kernel"]["execution_state"] == "idle" for s in sessions):
            return
        time.sleep(0.3)
    raise AssertionError(f"the kernel of {name} did not start")


def test_jupyterlab_opens_every_notebook_with_the_kits_kernel_and_runs_cells():
    with jupyterlab() as (base, token), browser_page() as page:
        for path in sorted(NOTEBOOKS.glob("*.ipynb")):
            open_notebook(page, base, token, path.name)
            assert page.locator(".jp-Toolbar-kernelName").first.inner_text().strip() == "Python 3 (ipykernel)"
            first = page.locator(".jp-Cell").first.inner_text()
            assert "Teaching:" in first and "Objectives" in first
        open_notebook(page, base, token, "01-webhooks-101.ipynb")
        code_cells = page.locator(".jp-CodeCell")
        code_cells.nth(0).click()
        for _ in range(4):  # the setup, the exercise's text, the exercise as shipped, its check
            page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-CodeCell").nth(2).locator(".jp-OutputArea-output")
        output.first.wait_for()
        assert "Not yet: POST /hook should answer 204" in output.all_inner_texts()[0]
        kernels = requests.get(f"{base}/api/kernels?token={token}", timeout=5).json()
        assert kernels and all(k["name"] == "python3" for k in kernels)


def test_inspector_page_lists_shows_masks_and_replays(live, redis):
    sms = signed(make_sms("seen in a browser"), SECRET, "sha256")
    response = requests.post(live["url"], data=sms, headers={"Authorization": "Bearer very-secret-token"}, timeout=5)
    assert response.status_code == 204
    with browser_page() as page:
        page.goto(live["base"] + "/inspect")
        row = page.locator("table tr").nth(1)
        assert "POST" in row.inner_text() and "204" in row.inner_text()
        row.locator("a").click()
        page.wait_for_selector("h2:has-text('Headers')")
        body = page.inner_text("body")
        assert "Bear…(masked)" in body and "very-secret-token" not in body
        assert "seen+in+a+browser" in body
        page.click("text=Replay this request")
        page.wait_for_selector("#replayed")
        assert page.inner_text("#replayed") == "Replayed: the receiver answered 204 (duplicate: stored once)."
