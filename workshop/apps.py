"""The receivers the kit can serve, by name: the kit's own, and those it is measured against.

    python -m workshop receiver --app kit|push|bare|inline
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask, request
from redis import RedisError

from solutions.inline_receiver import create_inline_app
from solutions.receiver import INBOUND_PATH, connect, create_app
from solutions.settings import load_settings


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
    "kit": create_app, "push": create_push_app, "bare": create_bare_app, "inline": create_inline_app,
}
