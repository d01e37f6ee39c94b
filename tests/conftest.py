"""Fixtures: a real Redis server for the session, the receiver app, and live services."""
from __future__ import annotations

import os
import signal

import pytest
from redis import Redis

from solutions.receiver import create_app
from workshop import inspector
from workshop.redis_server import RedisServer
from workshop.services import start_receiver, start_worker

SECRET = "test-secret-4f1c9a"  # a test value, not a real credential


@pytest.fixture(scope="session")
def redis_server():
    """A private redis-server, started by the kit, for the whole test session."""
    with RedisServer() as server:
        yield server


@pytest.fixture()
def redis_url(redis_server) -> str:
    """The URL of the session's Redis, emptied before each test."""
    inspector.flush()  # a request an earlier test's app kept must not land in this test's Redis
    Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture()
def redis(redis_url) -> Redis:
    return Redis.from_url(redis_url)


@pytest.fixture()
def settings_env(monkeypatch, tmp_path, redis_url) -> dict[str, str]:
    """Settings in the environment for this test (and for processes it starts)."""
    env = {
        "REDIS_URL": redis_url,
        "SIGNATURE_SECRET": SECRET,
        "SIGNATURE_METHOD": "sha256",
        "MESSAGES_FILE": str(tmp_path / "messages.jsonl"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture()
def app(settings_env):
    return create_app({"TESTING": True})


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def live(settings_env):
    """A real receiver (waitress, 127.0.0.1) and two real worker processes."""
    receiver, base = start_receiver(settings_env["REDIS_URL"], env=settings_env)
    workers = [start_worker(settings_env["REDIS_URL"], env=settings_env) for _ in range(2)]
    yield {"url": base + "/webhooks/inbound-sms", "base": base, "receiver": receiver,
           "workers": workers, "env": settings_env}
    for service in [receiver, *workers]:
        service.stop()


def like_a_terminal() -> None:
    """In the child: take Ctrl+C (SIGINT) as a terminal would deliver it.

    A shell runs background jobs with SIGINT ignored, and children inherit that.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Under `pytest -n 2 --dist loadgroup` (pytest-xdist; quicker, but the notebooks' checks are then judged on a
# busier machine), tests that share something run in one process, one after another: the runs
# of one notebook (it writes its job modules into notebooks/), the commands on the kit's default ports (5050
# and 6379), and the browser.
SHARED = {name: "commands" for name in ("test_commands.py", "test_demo_script.py", "test_cli.py", "test_doctor.py",
                                          "test_redis_server.py", "test_tunnel.py", "test_secrets.py")}
SHARED.update({"test_browser.py": "browser", "test_screenshots.py": "browser", "test_learner_answers.py": "nb-learner"})


def _group(item: pytest.Item) -> str | None:
    name = item.path.name
    if name == "test_notebooks.py" and hasattr(item, "callspec"):
        return f"nb-{item.callspec.params['path'].stem[:2]}"
    if name.startswith("test_notebook_"):
        return f"nb-{name[len('test_notebook_'):][:2]}"
    return SHARED.get(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = _group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_report_header(config):
    return f"webhooks workshop tests; REDIS_URL in the environment: {'yes' if os.environ.get('REDIS_URL') else 'no'}"
