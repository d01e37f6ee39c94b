"""solutions.store: each message written once, even with concurrent writers and crashes."""
from __future__ import annotations

import json
import multiprocessing
import os

import pytest
from redis import Redis

from solutions.store import MessageStore, read_messages


def _record(n: int) -> dict:
    return {"messageId": f"M{n}", "msisdn": "44", "text": f"text {n} ✓", "receivedAt": "now"}


def test_add_writes_a_message_once(tmp_path, redis):
    store = MessageStore(tmp_path / "m.jsonl", redis)
    assert store.add(_record(1)) is True
    assert store.add(_record(1)) is False
    assert store.add(_record(2)) is True
    assert [m["messageId"] for m in read_messages(tmp_path / "m.jsonl")] == ["M1", "M2"]


def test_commands_added_by_also_run_with_the_index_and_only_for_a_new_line(tmp_path, redis):
    store = MessageStore(tmp_path / "m.jsonl", redis)
    assert store.add(_record(1), also=lambda pipe: pipe.incr("settled")) is True
    assert store.add(_record(1), also=lambda pipe: pipe.incr("settled")) is False
    assert redis.get("settled") == b"1"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full, a file every write to fails")
def test_when_the_line_cannot_be_written_nothing_is_settled_or_indexed(tmp_path, redis):
    """Settling before the line is safe would lose the message if the write then failed (or the worker died)."""
    path = tmp_path / "m.jsonl"
    path.symlink_to("/dev/full")  # a disk that is full: every write fails
    store = MessageStore(path, redis)
    with pytest.raises(OSError):
        store.add(_record(1), also=lambda pipe: pipe.incr("settled"))
    assert redis.get("settled") is None
    assert all(redis.scard(key) == 0 for key in redis.keys("sms:written:*"))


def test_a_line_a_crashed_writer_left_whole_is_not_written_again(tmp_path, redis):
    path = tmp_path / "m.jsonl"
    MessageStore(path, redis).add(_record(1))
    with open(path, "a") as f:  # written, then the writer died before updating the index
        f.write(json.dumps(_record(2)) + "\n")
    store = MessageStore(path, redis)
    assert store.add(_record(2)) is False
    assert [m["messageId"] for m in read_messages(path)] == ["M1", "M2"]


def test_a_torn_line_is_cut_off_and_the_message_written_whole(tmp_path, redis):
    path = tmp_path / "m.jsonl"
    MessageStore(path, redis).add(_record(1))
    with open(path, "a") as f:
        f.write(json.dumps(_record(2))[:20])  # the writer died mid-line
    assert read_messages(path)[-1]["messageId"] == "M1"
    assert MessageStore(path, redis).add(_record(2)) is True
    lines = path.read_text().splitlines()
    assert [json.loads(line)["messageId"] for line in lines] == ["M1", "M2"]


def test_a_replaced_file_is_indexed_afresh(tmp_path, redis):
    path = tmp_path / "m.jsonl"
    store = MessageStore(path, redis)
    for n in range(3):
        store.add(_record(n))
    path.unlink()
    assert store.add(_record(0)) is True
    assert len(read_messages(path)) == 1


WRITERS = 8


def _writer(path: str, url: str, ids: list[int], start) -> None:
    store = MessageStore(path, Redis.from_url(url))
    store.redis.ping()  # connected before the start, so that the writers really do race
    start.wait(60)
    for n in ids:
        store.add(_record(n))


def test_concurrent_writers_in_separate_processes_write_each_message_once(tmp_path, redis_url):
    """Eight processes, released together by a barrier, each try to write the same 40 messages in the same order."""
    path = tmp_path / "m.jsonl"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=_writer, args=(str(path), redis_url, list(range(40)), start))
             for _ in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
        assert p.exitcode == 0
    ids = [m["messageId"] for m in read_messages(path)]
    assert sorted(ids) == sorted(f"M{n}" for n in range(40))
