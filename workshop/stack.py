"""Redis, a receiver and supervised workers, started together: for the demo, the fault scenarios and the benchmark."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from redis import Redis, RedisError
from rq import Worker

from solutions import intake
from solutions.receiver import INBOUND_PATH
from workshop.redis_server import RedisServer, ensure_redis
from workshop.services import Service, WorkerService, start_receiver, start_worker
from workshop.supervisor import Supervisor


class Stack:
    """The whole pipeline on this machine. `stop()` ends everything it started."""

    def __init__(self, workers: int = 2, *, secret: str, method: str = "sha256", private_redis: bool = True,
                 worker_class: str | None = None, folder: str | Path | None = None,
                 env: dict[str, str] | None = None, app: str = "kit", sweep: bool = True) -> None:
        self.folder = Path(folder or tempfile.mkdtemp(prefix="workshop-stack-"))
        self.messages_file = self.folder / "messages.jsonl"
        self.env = {"SIGNATURE_SECRET": secret, "SIGNATURE_METHOD": method,
                    "MESSAGES_FILE": str(self.messages_file), **(env or {})}
        self.worker_class = worker_class
        self.sweep = sweep  # False: workers without the Sweeper (workshop.chaos with its protections off)
        self.redis_server: RedisServer | None = None
        self.supervisor: Supervisor | None = None
        self.receiver: Service | None = None
        try:
            if private_redis:
                self.redis_server = RedisServer()
                self.redis_url = self.redis_server.url
            else:
                self.redis_url, self.redis_server = ensure_redis()
            self.redis = Redis.from_url(self.redis_url)
            self.receiver, self.base_url = start_receiver(self.redis_url, env=self.env, app=app)
            self.url = self.base_url + INBOUND_PATH
            self.supervisor = Supervisor(self._start_worker, workers)
        except BaseException:
            self.stop()
            raise

    def _start_worker(self, wait: bool) -> WorkerService:
        return start_worker(self.redis_url, self.worker_class, env=self.env, wait=wait, sweep=self.sweep)

    @property
    def workers(self) -> list[Service]:
        """The worker processes running now."""
        return list(self.supervisor.services) if self.supervisor else []

    def busy_worker(self, timeout: float = 30.0) -> tuple[WorkerService, str] | None:
        """A worker that holds a job right now, by RQ's own account, and the job's id; None on time-out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for service in self.workers:
                if not isinstance(service, WorkerService) or not service.running:
                    continue
                worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + service.worker_name,
                                            connection=self.redis)
                job_id = worker.get_current_job_id() if worker else None
                if job_id:
                    return service, job_id
            time.sleep(0.002)
        return None

    def kill_busy_worker(self, timeout: float = 30.0) -> str | None:
        """SIGKILL the process group of a worker that holds a job (it and its job); the job's id, or None."""
        found = self.busy_worker(timeout)
        if found is None:
            return None
        service, job_id = found
        service.kill()
        service.proc.wait()
        return job_id

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
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.receiver is not None:
            self.receiver.stop()
        if self.redis_server is not None:
            self.redis_server.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
