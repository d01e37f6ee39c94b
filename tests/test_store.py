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


def test_whole_lines_a_crashed_writer_left_before_a_torn_one_are_kept_and_indexed(tmp_path, redis):
    path = tmp_path / "m.jsonl"
    MessageStore(path, redis).add(_record(1))
    with open(path, "a") as f:  # a writer appended two lines and died in the middle of a third
        f.write(json.dumps(_record(2)) + "\n" + json.dumps(_record(3)) + "\n" + json.dumps(_record(4))[:15])
    store = MessageStore(path, redis)
    assert store.add(_record(5)) is True  # catches up first, then appends after the whole lines
    assert store.add(_record(3)) is False and store.add(_record(2)) is False
    assert store.add(_record(4)) is True and store.add(_record(6)) is True
    assert [json.loads(line)["messageId"] for line in path.read_text().splitlines()] == [
        "M1", "M2", "M3", "M5", "M4", "M6"]


def test_a_file_the_index_has_never_seen_is_indexed_from_its_first_line(tmp_path, redis):
    """A new Redis (or one emptied) beside a messages file that already holds lines."""
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(_record(n)) + "\n" for n in (1, 2)))
    store = MessageStore(path, redis)
    assert store.add(_record(1)) is False and store.add(_record(2)) is False
    assert store.add(_record(3)) is True
    assert [m["messageId"] for m in read_messages(path)] == ["M1", "M2", "M3"]


def test_each_file_has_its_own_index_its_own_lock_and_readable_utf8(tmp_path, redis):
    first, second = tmp_path / "a" / "b" / "one.jsonl", tmp_path / "two.jsonl"  # a folder made on the way
    assert MessageStore(first, redis).add(_record(1)) is True
    assert MessageStore(second, redis).add(_record(2)) is True  # a line as long as the first file's
    assert MessageStore(first, redis).add(_record(2)) is True  # written to one file is not written to the other
    assert MessageStore(second, redis).add(_record(1)) is True
    assert (tmp_path / "a" / "b" / "one.jsonl.lock").exists()  # beside the file, for every writer of it
    assert "text 1 ✓" in first.read_bytes().decode("utf-8")  # as written, not \u escapes


def test_reading_skips_a_line_that_is_not_json_and_goes_on(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(_record(1)) + "\n{torn\n" + json.dumps(_record(2)) + "\n", encoding="utf-8")
    assert [m["messageId"] for m in read_messages(path)] == ["M1", "M2"]
    assert read_messages(tmp_path / "absent.jsonl") == []


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
