"""The anti-pattern, for comparison: a receiver that does the work before it answers.

It checks the signature, writes the file and does other work (a database call,
an API call...: 50 ms, or INLINE_WORK_SECONDS) while the sender waits. Under a burst its answers
slow down, senders time out and re-send, and a crash loses what was half done.
Notebook 04 and `python -m workshop bench` measure it against the kit's receiver.
"""
from __future__ import annotations

import json
import os
import time

from flask import Flask, jsonify, request

from solutions.payloads import BadPayload, from_request
from solutions.settings import load_settings
from solutions.signatures import InvalidSignature, verify

WORK_SECONDS = 0.05


def create_inline_app() -> Flask:
    """A receiver that processes each message inline, then answers."""
    app = Flask(__name__)
    settings = load_settings()
    work_seconds = float(os.environ.get("INLINE_WORK_SECONDS") or WORK_SECONDS)

    @app.route("/webhooks/inbound-sms", methods=["GET", "POST"])
    def inbound_sms():
        try:
            payload = from_request(request)
            if settings.signature_secret:
                verify(payload, settings.signature_secret, settings.signature_method)
        except (BadPayload, InvalidSignature) as error:
            return jsonify(error=str(error)), 400
        with open(settings.messages_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(payload) + "\n")
        time.sleep(work_seconds)
        return "", 204

    return app
