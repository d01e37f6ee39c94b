"""Notebook 01: the smallest webhook receiver. It keeps what it gets and answers 204."""
from __future__ import annotations

from flask import Flask, request


def create_hello_app(received: list) -> Flask:
    """A Flask app whose POST /hook appends the JSON body to `received` and answers 204."""
    app = Flask(__name__)

    @app.post("/hook")
    def hook():
        received.append(request.get_json(silent=True))
        return "", 204

    return app
