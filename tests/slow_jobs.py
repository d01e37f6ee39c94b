"""Job functions for the tests, importable by real worker processes."""
from __future__ import annotations

import os
import time

from redis import Redis

from solutions import jobs
from solutions.settings import load_settings

STARTS = "test:starts"


def work_for_a_while(delivery: dict) -> str:
    """Note each start, work TEST_JOB_SECONDS, then record the message as the plain job does."""
    settings = load_settings()
    Redis.from_url(settings.redis_url).rpush(STARTS, delivery["deliveryId"])
    time.sleep(float(os.environ.get("TEST_JOB_SECONDS", "5")))
    return jobs.process_message(delivery)
