"""The messages file: one JSON object per line, each message written exactly once.

Jobs run at least once, so the same message may be processed twice, by two
workers at once, or again after a worker died half-way through a write. The
store makes that harmless. Writers take an exclusive lock on the file; under it
they bring Redis's index of written messageIds up to date with the file (a line
a crashed writer left whole is indexed, a torn one is cut off), then append only
what the index does not hold.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis
from redis.client import Pipeline

try:
    import fcntl
except ImportError:  # Windows: WSL is the supported route; this keeps imports working
    fcntl = None  # type: ignore[assignment]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` + '.lock' (released if the process dies)."""
    with open(f"{path}.lock", "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class MessageStore:
    """Append-once JSON Lines file, indexed in Redis by messageId."""

    def __init__(self, path: Path | str, connection: Redis) -> None:
        self.path = Path(path)
        self.redis = connection
        tag = hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:10]
        self._ids = f"sms:written:{tag}"
        self._size = f"sms:written-bytes:{tag}"

    def add(self, record: dict, also: Callable[[Pipeline], object] | None = None) -> bool:
        """Append `record` unless its messageId is already written. True if appended.

        `also` may add commands to the transaction that indexes the new line, so that
        they run in the same round trip, only once the line is safely in the file.
        """
        message_id = str(record["messageId"])
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path):
            size = self.path.stat().st_size if self.path.exists() else 0
            recorded, known = self.redis.pipeline().get(self._size).sismember(self._ids, message_id).execute()
            if size != int(recorded or 0):  # the file changed behind the index: catch up first
                size = self._catch_up()
                known = self.redis.sismember(self._ids, message_id)
            if known:
                return False
            with open(self.path, "ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            with self.redis.pipeline() as pipe:
                pipe.sadd(self._ids, message_id).set(self._size, size + len(line))
                if also is not None:
                    also(pipe)
                pipe.execute()
        return True

    def _catch_up(self) -> int:
        """Index what the file holds beyond the recorded size; return the file's size."""
        recorded = int(self.redis.get(self._size) or 0)
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < recorded:  # the file was replaced or emptied: index it afresh
            self.redis.delete(self._ids)
            recorded = 0
        if size == recorded:
            return size
        with open(self.path, "r+b") as handle:
            handle.seek(recorded)
            tail = handle.read()
            whole = tail[: tail.rfind(b"\n") + 1]
            if len(whole) < len(tail):  # a writer died mid-line: drop the torn part
                handle.truncate(recorded + len(whole))
        ids = [str(json.loads(line)["messageId"]) for line in whole.splitlines() if line.strip()]
        with self.redis.pipeline() as pipe:
            if ids:
                pipe.sadd(self._ids, *ids)
            pipe.set(self._size, recorded + len(whole)).execute()
        return recorded + len(whole)


def read_messages(path: Path | str) -> list[dict]:
    """Every whole message in the file, in order (an absent file holds none)."""
    path = Path(path)
    if not path.exists():
        return []
    messages = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            messages.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line, cut off by the next writer
    return messages
