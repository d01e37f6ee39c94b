"""`make screenshots`: the README's pictures, made from the running kit so they never drift from the code.

The inspector page, the demo's summary and notebook 04's plot of acknowledgement time
with and without a queue, rendered by headless Chromium and the notebook itself.
"""
from __future__ import annotations

import base64
import html
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from workshop import sender
from workshop.browser import NOTEBOOKS, browser_page, why_no_browser
from workshop.notebook import execute
from workshop.stack import Stack

OUT = Path(__file__).resolve().parent / "guide" / "img"
TERMINAL = """<!doctype html><meta charset="utf-8"><body style="margin:0;background:#1e1e1e">
<pre style="margin:0;padding:18px 22px;color:#e6e6e6;font:14px/1.45 'DejaVu Sans Mono',Menlo,monospace">{}</pre>"""


def inspector(out: Path) -> Path:
    """The inspector page after a few messages and one replay."""
    secret = "screenshot-secret"
    with Stack(1, secret=secret) as stack, browser_page(1100, 520) as page:
        for text in ("Pizza at 8?", "Running late", "See you there"):
            sender.deliver(stack.url, sender.signed(sender.make_sms(text), secret, "sha256"),
                           style="form")
        page.goto(stack.base_url + "/inspect")
        page.locator("table tr").nth(1).locator("a").click()
        page.click("text=Replay this request")
        page.wait_for_selector("#replayed")
        page.goto(stack.base_url + "/inspect")
        path = out / "inspector.png"
        page.screenshot(path=str(path), full_page=True)
    return path


def demo_summary(out: Path) -> Path:
    """The end of `python -m workshop demo`, as a terminal shows it."""
    result = subprocess.run([sys.executable, "-m", "workshop", "demo", "--count", "30"], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "SIGNATURE_SECRET": "", "REDIS_URL": ""})
    lines = [line for line in result.stdout.splitlines() if not line.startswith("  sent ")]
    with browser_page(980, 200) as page:
        page.set_content(TERMINAL.format(html.escape("$ python -m workshop demo\n" + "\n".join(lines))))
        path = out / "demo-summary.png"
        page.locator("pre").screenshot(path=str(path))
    return path


def queue_latency(out: Path) -> Path:
    """Notebook 04's plot, from running the notebook (solved) in a real kernel."""
    notebook = nbformat.read(NOTEBOOKS / "04-the-queue.ipynb", as_version=4)
    execute(notebook, NOTEBOOKS, solved=True, timeout=180)
    cell = next(c for c in notebook.cells if c.cell_type == "code" and "latency_figure(results)" in c.source)
    image = next(o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {}))
    path = out / "queue-latency.png"
    path.write_bytes(base64.b64decode(image))
    return path


def run_screenshots(out: Path = OUT) -> int:
    """Make every picture; return 1 with a reason if there is no browser."""
    reason = why_no_browser()
    if reason:
        print(f"Cannot take screenshots: {reason}.", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for make in (inspector, demo_summary, queue_latency):
        print(f"saved {make(out)}", flush=True)
    return 0
