"""Redis, a receiver and workers, started together: for the demo, the fault scenarios and the benchmark."""
from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from redis import Redis, RedisError

from solutions import intake
from solutions.receiver import INBOUND_PATH
from workshop.redis_server import RedisServer, ensure_redis
from workshop.services import Service, start_receiver, start_worker


class Stack:
    """The whole pipeline on this machine. `stop()` ends everything it started."""

    def __init__(self, workers: int = 2, *, secret: str, method: str = "sha256", private_redis: bool = True,
                 worker_class: str | None = None, folder: str | Path | None = None) -> None:
        self.folder = Path(folder or tempfile.mkdtemp(prefix="workshop-stack-"))
        self.messages_file = self.folder / "messages.jsonl"
        self.env = {"SIGNATURE_SECRET": secret, "SIGNATURE_METHOD": method, "MESSAGES_FILE": str(self.messages_file)}
        self.worker_class = worker_class
        self.redis_server: RedisServer | None = None
        self.workers: list[Service] = []
        self.receiver: Service | None = None
        try:
            if private_redis:
                self.redis_server = RedisServer()
                self.redis_url = self.redis_server.url
            else:
                self.redis_url, self.redis_server = ensure_redis()
            self.redis = Redis.from_url(self.redis_url)
            self.receiver, self.base_url = start_receiver(self.redis_url, env=self.env)
            self.url = self.base_url + INBOUND_PATH
            for _ in range(workers):
                self.add_worker()
        except BaseException:
            self.stop()
            raise

    def add_worker(self, wait: bool = True) -> Service:
        """Start one more worker process."""
        worker = start_worker(self.redis_url, self.worker_class, env=self.env, wait=wait)
        self.workers.append(worker)
        return worker

    def kill_worker(self) -> Service:
        """SIGKILL a random worker's whole process group (it and any job it runs)."""
        victim = random.choice(self.workers)
        victim.kill()
        victim.proc.wait()
        victim.stop()
        self.workers.remove(victim)
        return victim

    def pending(self) -> int:
        """Acknowledged messages not yet processed."""
        return self.redis.zcard(intake.PENDING)

    def wait_settled(self, timeout: float = 120.0) -> bool:
        """Wait until every acknowledged message is processed; False on time-out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.pending() == 0 and intake.get_queue(self.redis).count == 0:
                    return True
            except RedisError:  # Redis restarting
                pass
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        """Stop the workers, the receiver and the private Redis."""
        for service in [*self.workers, self.receiver]:
            if service is not None:
                service.stop()
        self.workers = []
        if self.redis_server is not None:
            self.redis_server.stop()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
