"""Helpers for notebook 09, debugging a failing delivery: the help desk's planted code, and the lab's chores.

The desk's pipeline has three faults planted in it: its receiver answers before it
stores (`workshop.unprotected.create_ack_first_app`), its SMS_JOB setting names a
module that does not exist, and its signing string (`desk_signing.py`, written by
`plant`) is sorted the wrong way. Never copy them.
"""
from __future__ import annotations

import importlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from rq import Queue

from solutions.receiver import INBOUND_PATH
from workshop import inspector
from workshop.checks import CHECKS
from workshop.notebook import Lab, autosolve

PLANTED_SIGNING = '''"""The help desk's signing string: the text Vonage signs, and the worker signs again to compare."""


def signing_string(params: dict) -> str:
    """Every field but sig, sorted by key, as &key=value (with & and = in values made _)."""
    parts = []
    for key in sorted(params, reverse=True):
        if key != "sig":
            value = str(params[key]).replace("&", "_").replace("=", "_")
            parts.append(f"&{key}={value}")
    return "".join(parts)
'''


def plant(folder: str | Path = ".") -> Path:
    """Write the desk's `desk_signing.py`, fault included, where a worker started here imports it."""
    path = Path(folder) / "desk_signing.py"
    path.write_text(PLANTED_SIGNING)
    importlib.invalidate_caches()
    sys.modules.pop("desk_signing", None)
    return path


def load(dotted: str) -> Any:
    """`module.name` as its file is now: imported afresh, as a worker started now would."""
    module, _, name = dotted.rpartition(".")
    importlib.invalidate_caches()
    sys.modules.pop(module, None)
    return getattr(importlib.import_module(module), name)


def catch_up_module(yours: str, path: str) -> str:
    """Keep your function `yours` ('module.name') if it passes its check; else write the reference at `path`
    into that module's file, so that workers import the reference under your module's name."""
    module, _, name = yours.rpartition(".")
    if not autosolve():
        try:
            CHECKS[path](load(yours))
            return yours
        except Exception:
            pass
    ref_module, _, ref_name = path.partition(":")
    Path(f"{module}.py").write_text(f"from {ref_module} import {ref_name} as {name}  # the reference (catch-up)\n")
    load(yours)
    print(f"Using the reference solution {path.replace(':', '.')} (written into {module}.py).")
    return yours


@dataclass
class Desk:
    """A receiver served from a thread in this kernel, with the inspector, and its log in a file."""

    app: Flask
    url: str
    log_path: Path

    def log_tail(self, lines: int = 10) -> str:
        """The receiver's last log lines."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(nothing logged)"


def serve(lab: Lab, factory: Callable[[dict], Flask], job: str) -> Desk:
    """Serve `factory({"REDIS_URL": ..., "SMS_JOB": job})` on 127.0.0.1 with the inspector around it."""
    app = factory({"REDIS_URL": lab.redis_url, "SMS_JOB": job})
    inspector.init_app(app)
    log_path = Path(lab.file("receiver.log"))
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for logger in (app.logger, logging.getLogger("workshop.unprotected")):
        for old in logger.handlers:
            old.close()
        logger.handlers = [handler]
        logger.propagate = False  # into the file, not onto this notebook's cells
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    return Desk(app, lab.serve(app) + INBOUND_PATH, log_path)


def drained(queue: Queue) -> bool:
    """True when no job waits in the queue and none is running."""
    return queue.count == 0 and queue.started_job_registry.count == 0


def wait_drained(queue: Queue, what: str = "the worker to run the jobs", timeout: float = 20.0) -> bool:
    """Wait until no job has waited in the queue or run for half a second (a receiver may queue just after
    answering); say every few seconds what it waits for. False after `timeout` seconds."""
    quiet_since: list[float] = []

    def quiet() -> bool:
        if not drained(queue):
            quiet_since.clear()
            return False
        quiet_since[:] = quiet_since or [time.monotonic()]
        return time.monotonic() - quiet_since[0] >= 0.5

    return wait_until(quiet, what, timeout)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0, every: float = 3.0) -> bool:
    """Wait until `condition()` is true, saying every few seconds what for; False after `timeout` seconds."""
    started = said = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            print(f"Gave up waiting for {what} after {timeout:.0f} s.")
            return False
        if time.monotonic() - said >= every:
            said = time.monotonic()
            print(f"waiting for {what}... {said - started:.0f} s")
        time.sleep(0.1)
    return True


def fields(entry: dict) -> dict[str, str]:
    """The SMS fields of a request the inspector kept: from its JSON body, its form body or its query."""
    content_type = entry["headers"].get("Content-Type", "")
    if content_type.startswith("application/json"):
        return json.loads(entry["body"])
    return dict(parse_qsl(entry["body"] if entry["method"] == "POST" else entry["query"], keep_blank_values=True))


def kept(connection: Any, message_ids: list[str]) -> list[dict]:
    """The inspector's first kept request for each of `message_ids` (replays left out), in their order."""
    found: dict[str, dict] = {}
    for entry in reversed(inspector.recent(connection)):  # oldest first
        message_id = fields(entry).get("messageId", "")
        if not entry.get("replay_of") and message_id in message_ids:
            found.setdefault(message_id, entry)
    return [found[m] for m in message_ids if m in found]

