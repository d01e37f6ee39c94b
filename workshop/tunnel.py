"""A public HTTPS URL to the local receiver, with pyngrok, or a clear local fallback.

    python -m workshop tunnel --port 5050

With an ngrok authtoken (NGROK_AUTHTOKEN, or ngrok's own configuration) this
opens one tunnel per session (a free ngrok account allows one agent session),
prints the webhook URL to paste into the Vonage dashboard and closes it on exit.
Without a token, a network or the agent binary, it says why in one sentence and
falls back to the local URL within seconds: everything else works offline.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from solutions.receiver import INBOUND_PATH

OPEN_TIMEOUT = 20.0

# pyngrok logs every line the agent prints, and ngrok's error lines can repeat the authtoken
# ("Your authtoken: ..."); Python would print them to the terminal. Every failure is told in
# a sentence of our own instead (explain() below).
_pyngrok_log = logging.getLogger("pyngrok")
_pyngrok_log.addHandler(logging.NullHandler())
_pyngrok_log.propagate = False

# ngrok's error codes that attendees meet, with what they mean and what to do.
KNOWN_ERRORS = {
    "ERR_NGROK_105": ("the ngrok authtoken is not valid",
                      "copy it again from dashboard.ngrok.com (Your Authtoken) into NGROK_AUTHTOKEN in .env"),
    "ERR_NGROK_107": ("the ngrok authtoken is not valid",
                      "copy it again from dashboard.ngrok.com (Your Authtoken) into NGROK_AUTHTOKEN in .env"),
    "ERR_NGROK_4018": ("ngrok needs a (free) account and its authtoken",
                       "sign up at ngrok.com, then set NGROK_AUTHTOKEN in .env"),
    "ERR_NGROK_108": ("your ngrok account already has an agent running elsewhere (a free account allows one)",
                      "stop the other one (another notebook, terminal or laptop; `pkill ngrok`), then try again"),
    "ERR_NGROK_334": ("that ngrok URL is already in use by another session",
                      "stop the other session, or let ngrok choose a URL"),
}


@dataclass
class Endpoint:
    """Where senders should deliver: the public URL if there is one, else the local one."""

    local_url: str
    public_url: str | None = None
    reason: str | None = None  # why there is no public URL
    fix: str | None = None

    @property
    def webhook_url(self) -> str:
        return (self.public_url or self.local_url) + INBOUND_PATH

    def describe(self) -> str:
        if self.public_url:
            return f"Public webhook URL (paste it into the Vonage dashboard): {self.webhook_url}"
        text = f"No public URL: {self.reason}. Using the local URL {self.webhook_url}."
        return text + (f"\n  To go live: {self.fix}" if self.fix else "")


def _ngrok_config_files() -> list[Path]:
    home = Path.home()
    return [home / ".config" / "ngrok" / "ngrok.yml", home / "Library" / "Application Support" / "ngrok" / "ngrok.yml",
            Path(os.environ.get("LOCALAPPDATA", home)) / "ngrok" / "ngrok.yml"]


def find_authtoken() -> str | None:
    """The ngrok authtoken from NGROK_AUTHTOKEN or from ngrok's configuration file, if any."""
    token = os.environ.get("NGROK_AUTHTOKEN", "").strip()
    if token:
        return token
    from pyngrok import conf

    files = [Path(conf.get_default().config_path or "")] + _ngrok_config_files()
    for path in files:
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.strip() in ("authtoken", "auth_token") and value.strip().strip("'\""):
                    return value.strip().strip("'\"")
    return None


def explain(error: Exception) -> tuple[str, str]:
    """A plain sentence for a pyngrok error, and the fix."""
    from pyngrok.exception import PyngrokNgrokError, PyngrokNgrokInstallError

    if isinstance(error, PyngrokNgrokInstallError):
        return ("the ngrok agent could not be downloaded (offline, or blocked by a proxy or antivirus)",
                "download ngrok from ngrok.com/download and set PYNGROK_NGROK_PATH to the program")
    code = getattr(error, "ngrok_error_code", None)
    if code in KNOWN_ERRORS:
        return KNOWN_ERRORS[code]
    if isinstance(error, PyngrokNgrokError):
        detail = getattr(error, "ngrok_error", None) or str(error)
        return (f"ngrok did not start ({detail.strip().rstrip('.')})",
                "check your network and token; see workshop/guide/troubleshooting.md")
    return (f"ngrok failed ({type(error).__name__}: {error})", "see workshop/guide/troubleshooting.md")


_lock = threading.Lock()
_open: dict[int, str] = {}


def open_tunnel(port: int, *, timeout: float = OPEN_TIMEOUT) -> Endpoint:
    """Open (or reuse) the session's tunnel to 127.0.0.1:`port`; fall back to the local URL."""
    local = f"http://127.0.0.1:{port}"
    token = find_authtoken()
    if not token:
        return Endpoint(local, reason="no ngrok authtoken is configured",
                        fix="sign up at ngrok.com and set NGROK_AUTHTOKEN in .env")
    result: dict = {}

    def connect() -> None:
        try:
            result["url"] = _connect(port, token)
        except Exception as error:  # every failure becomes a plain sentence
            result["error"] = error

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    if "url" in result:
        return Endpoint(local, public_url=result["url"])
    if "error" in result:
        reason, fix = explain(result["error"])
        return Endpoint(local, reason=reason, fix=fix)
    return Endpoint(local, reason=f"ngrok did not answer within {timeout:.0f} s (offline or a proxy?)",
                    fix="try another network; everything but the public URL works offline")


def _connect(port: int, token: str) -> str:
    from pyngrok import conf, ngrok

    with _lock:
        if port in _open:
            return _open[port]
        config = conf.get_default()
        config.auth_token = token
        config.monitor_thread = False
        for tunnel in ngrok.get_tunnels():  # one agent session: reuse its tunnel
            if str(tunnel.upstream.get("url", "")).endswith(f":{port}"):
                _open[port] = str(tunnel.public_url)
                return _open[port]
        tunnel = ngrok.connect(str(port), "http")
        _open[port] = str(tunnel.public_url)
        atexit.register(close_tunnels)
        return _open[port]


def close_tunnels() -> None:
    """Close this session's tunnels and stop the ngrok agent."""
    from pyngrok import ngrok

    with _lock:
        if _open:
            _open.clear()
            with contextlib.suppress(Exception):  # already gone
                ngrok.kill()
