"""The kit with its protections off, to watch what each one saves (`python -m workshop chaos --protections off`).

Never copy these: each is the simplest code that looks right, and loses or doubles messages.

- `create_ack_first_app()` (`python -m workshop receiver --app ack-first`) answers 204 first and queues the
  job only once the answer has gone. If Redis is down by then, the message is lost: the sender got its 204
  and never sends it again. It keeps no record of pending messages, and no note of the deliveries it saw.
- `append_message(delivery)` is a job that appends the message to MESSAGES_FILE without looking whether it
  is there already: a message delivered twice, or run twice, is written twice.
- Workers without their Sweeper: `python -m workshop worker --no-sweep`. A job held by a worker that is
  killed stays lost until RQ's own clean-up, a minute or more later, which moves it to the failed job registry.
"""
from __future__ import annotations

import json
import logging
import os

from flask import Flask, jsonify, make_response, request
from redis import RedisError
from rq import Queue

from solutions import intake
from solutions.jobs import to_record
from solutions.payloads import BadPayload, from_request
from solutions.receiver import INBOUND_PATH, connect
from solutions.settings import load_settings

APPEND_JOB = "workshop.unprotected.append_message"
log = logging.getLogger("workshop.unprotected")


def append_message(delivery: dict) -> str:
    """Append the message to MESSAGES_FILE, whether it is there already or not."""
    with open(load_settings().messages_file, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(to_record(delivery), ensure_ascii=False) + "\n")
    return "appended"


def queue_after_answering(queue: Queue, delivery: dict, job: str) -> None:
    """Queue the delivery's job; the sender has its 204 already, so a failure here loses the message."""
    message_id = delivery["payload"].get("messageId")
    try:
        queue.enqueue_call(job, args=(delivery,), timeout=intake.JOB_TIMEOUT, result_ttl=600,
                           failure_ttl=24 * 3600, description=f"SMS {message_id}")
    except RedisError as error:
        log.warning("could not queue message %s: %s", message_id, error)


def create_ack_first_app(config: dict | None = None) -> Flask:
    """A receiver that acknowledges before it stores. `config` as for `solutions.receiver.create_app`:
    REDIS_URL, and SMS_JOB, the job it queues (environment: SMS_JOB; default `append_message`).
    """
    app = Flask(__name__)
    app.config.from_mapping(REDIS_URL=load_settings().redis_url, SMS_JOB=os.environ.get("SMS_JOB") or APPEND_JOB)
    app.config.update(config or {})
    queue = app.extensions["sms_queue"] = intake.get_queue(connect(app.config["REDIS_URL"]))
    job = app.config["SMS_JOB"]

    @app.route(INBOUND_PATH, methods=["GET", "POST"])
    def inbound_sms():
        try:
            payload = from_request(request)
        except BadPayload as error:
            return jsonify(error=str(error)), error.status
        delivery = intake.new_delivery(payload)
        response = make_response("", 204)
        response.call_on_close(lambda: queue_after_answering(queue, delivery, job))  # runs once the 204 is sent
        return response

    return app
