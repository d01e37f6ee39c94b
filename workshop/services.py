"""Start the kit's processes in the background, tied to their owner's life.

Used by the demo, the notebooks and the tests alike. Every process runs under
`workshop.lifeline`, so it stops when its owner stops, even if the owner crashes.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests
from redis import Redis

RUN_DIR = Path(tempfile.gettempdir()) / "webhooks-workshop"


class ServiceError(RuntimeError):
    """A background process did not start; the message says why and what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Service:
    """One background process with its log file. `stop()` ends it and its children."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = RUN_DIR / f"{name}-{os.getpid()}-{time.time_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  open for the process's whole life; stop() closes it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workshop.lifeline", *argv],
            stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        atexit.register(self.stop)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the process printed."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait until `ready()` is true; raise ServiceError if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not self.running:
                raise ServiceError(f"{self.name} stopped at start-up. Its last words:\n{self.log_tail()}")
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} was not ready after {timeout:.0f} s. Its last words:\n{self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the whole process group (the process and any job it runs)."""
        with contextlib.suppress(ProcessLookupError):  # it is gone already
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 8.0) -> None:
        """Stop the process gently, then firmly; safe to call twice."""
        if self.running:
            if self.proc.stdin:
                self.proc.stdin.close()  # the lifeline stops its command
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.proc.wait()
        elif self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self._log.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_ready(url: str) -> Callable[[], bool]:
    """A readiness check: `url` answers at all."""
    def ready() -> bool:
        try:
            requests.get(url, timeout=0.5)
            return True
        except requests.RequestException:
            return False
    return ready


def start_receiver(redis_url: str, port: int | None = None, env: dict[str, str] | None = None,
                   app: str = "kit") -> tuple[Service, str]:
    """Serve a receiver (see workshop.apps) on 127.0.0.1 with the default production server.

    Returns the service and its base URL.
    """
    port = port or free_port()
    if not port_is_free(port):
        raise ServiceError(f"port {port} is in use: stop what runs there, or pass another --port")
    service = Service(
        "receiver",
        [sys.executable, "-m", "workshop", "receiver", "--port", str(port), "--app", app],
        {"REDIS_URL": redis_url, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    service.wait_until(http_ready(base + "/"))
    return service, base


class WorkerService(Service):
    """A kit worker process; `worker_name` is its name in RQ."""

    def __init__(self, worker_name: str, argv: list[str], env: dict[str, str]) -> None:
        super().__init__("worker", argv, env)
        self.worker_name = worker_name


def start_worker(redis_url: str, kind: str | None = None, env: dict[str, str] | None = None,
                 wait: bool = True, sweep: bool = True) -> WorkerService:
    """Run one kit worker (`python -m workshop worker`) in the background.

    With `wait`, return once the worker has registered with RQ. `sweep=False`: without its Sweeper.
    """
    name = f"kit-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "workshop", "worker", "--name", name] + (["--class", kind] if kind else [])
    argv += [] if sweep else ["--no-sweep"]
    service = WorkerService(name, argv, {"REDIS_URL": redis_url, **(env or {})})
    if wait:
        connection = Redis.from_url(redis_url)
        service.wait_until(lambda: bool(connection.exists(f"rq:worker:{name}")), timeout=20)
    return service
