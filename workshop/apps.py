"""The receivers the kit can serve, by name: the kit's own, and those it is measured against.

    python -m workshop receiver --app kit|naive|push|bare|inline|ack-first
"""
from __future__ import annotations

import json
from collections.abc import Callable

from flask import Flask, request
from redis import RedisError
from rq import Queue

from solutions.receiver import INBOUND_PATH, connect, create_app
from solutions.settings import env_flag, load_settings
from workshop import inspector
from workshop.inline_receiver import create_inline_app
from workshop.unprotected import create_ack_first_app


def create_kit_app() -> Flask:
    """The reference receiver, with the request inspector around it unless INSPECTOR=0."""
    app = create_app()
    if env_flag("INSPECTOR", True):
        inspector.init_app(app)
    return app


def record_naively(fields: dict) -> None:
    """The naive receiver's job: append the fields to MESSAGES_FILE, however often it runs."""
    with open(load_settings().messages_file, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(fields) + "\n")


def create_naive_app() -> Flask:
    """A typical tutorial's RQ receiver: enqueue the form, answer 204. No record, no de-duplication, no 503."""
    app = Flask(__name__)
    queue = Queue("naive", connection=connect(load_settings().redis_url))

    @app.route(INBOUND_PATH, methods=["GET", "POST"])
    def inbound_sms():
        queue.enqueue(record_naively, request.form.to_dict())
        return "", 204

    return app


def create_bare_app() -> Flask:
    """Answers 204 and does nothing: the upper bound for any receiver on this server."""
    app = Flask(__name__)

    @app.route(INBOUND_PATH, methods=["GET", "POST"])
    def inbound_sms():
        request.get_data()
        return "", 204

    return app


def create_push_app() -> Flask:
    """Pushes the raw body onto a Redis list, then answers: the limit for store-then-acknowledge."""
    app = Flask(__name__)
    redis = connect(load_settings().redis_url)

    @app.route(INBOUND_PATH, methods=["GET", "POST"])
    def inbound_sms():
        try:
            redis.rpush("bench:raw", request.get_data() or request.query_string)
        except RedisError:
            return "", 503
        return "", 204

    return app


APPS: dict[str, Callable[[], Flask]] = {
    "kit": create_kit_app, "naive": create_naive_app, "push": create_push_app, "bare": create_bare_app,
    "inline": create_inline_app, "ack-first": create_ack_first_app,
}
