"""Keep a number of worker processes running, as systemd or `rq worker-pool` would in production.

A kit worker exits on what it cannot handle (the talk: "if things go wrong,
exit; a separate tool monitors and restarts"). The Supervisor notices a worker
that has exited, or was killed, and starts a new one in its place.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from workshop.services import Service


class Supervisor:
    """`count` processes made by `start(wait)`, each started again when it exits."""

    def __init__(self, start: Callable[[bool], Service], count: int, check_every: float = 0.2) -> None:
        self.start = start
        self.check_every = check_every
        self.services = [start(True) for _ in range(count)]
        self.restarts = 0
        self.lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(self.check_every):
            with self.lock:
                for n, service in enumerate(self.services):
                    if not service.running and not self._stopping.is_set():
                        service.stop()
                        self.services[n] = self.start(False)
                        self.restarts += 1

    def add(self) -> Service:
        """Start one more supervised process."""
        service = self.start(True)
        with self.lock:
            self.services.append(service)
        return service

    def wait_for_restarts(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until `count` processes have been started again; False on time-out."""
        deadline = time.monotonic() + timeout
        while self.restarts < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.restarts >= count

    def stop(self) -> None:
        """Stop watching, then stop every process (safe to call twice)."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        with self.lock:
            for service in self.services:
                service.stop()
