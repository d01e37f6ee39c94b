"""The Flask receiver for inbound SMS webhooks: store, then acknowledge.

    flask --app solutions.receiver run          # for teaching
    python -m workshop receiver --port 5050     # with a production server

Every message is recorded in Redis and queued before the answer, 204. When
Redis cannot store it, the answer is 503 so that the sender tries again.
Vonage's SMS API posts to /webhooks/inbound-sms, its Messages API to
/webhooks/inbound-message (JSON, with a JWT the worker checks).
"""
from __future__ import annotations

import os

from flask import Blueprint, Flask, current_app, jsonify, request
from redis import Redis, RedisError
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException

from solutions import intake, messages_api
from solutions.payloads import BadPayload, from_request
from solutions.settings import load_settings

bp = Blueprint("receiver", __name__)
INBOUND_PATH = "/webhooks/inbound-sms"
MESSAGES_PATH = "/webhooks/inbound-message"


def connect(url: str, timeout: float = 0.8) -> Redis:
    """A Redis client that gives up quickly, so a down Redis means a quick 503."""
    return Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1)
    )


@bp.route(INBOUND_PATH, methods=["GET", "POST"])
def inbound_sms():
    """Accept one inbound SMS: check it, store it, then answer 204."""
    try:
        payload = from_request(request)
    except BadPayload as error:
        return jsonify(error=str(error)), error.status
    return _store_then_acknowledge(intake.new_delivery(payload))


@bp.post(MESSAGES_PATH)
def inbound_message():
    """Accept one Messages API inbound message: keep its raw body and its token, store them, then answer 204.

    The worker checks the token against these exact bytes. A callback without a token gets 503:
    Vonage's docs say an unsigned one follows an internal error, and that a 5xx makes Vonage send
    it again, signed.
    """
    try:
        token = messages_api.bearer_token(request.headers.get("Authorization"))
    except messages_api.MissingToken as error:
        current_app.logger.warning("unsigned Messages API callback: answered 503, so that Vonage sends it again")
        return jsonify(error=f"{error}; send it again, signed"), 503, {"Retry-After": "5"}
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        return jsonify(error=f"unsupported content type {request.mimetype!r}: the Messages API sends JSON"), 415
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        fields = messages_api.inbound_fields(raw)
    except BadPayload as error:
        return jsonify(error=str(error)), error.status
    payload = {**fields, "token": token, "raw": raw.decode("utf-8")}
    return _store_then_acknowledge(intake.new_delivery(payload, event=messages_api.EVENT))


def _store_then_acknowledge(delivery: dict):
    """Record the delivery and queue its job, then answer 204; 503 when Redis cannot store it."""
    try:
        new = intake.accept(current_app.extensions["sms_queue"], delivery, current_app.config["SMS_JOB"])
    except RedisError:
        current_app.logger.warning("could not store message %s: Redis did not answer", delivery["payload"]["messageId"])
        return jsonify(error="could not store the message; try again"), 503, {"Retry-After": "5"}
    return "", 204, {"X-Delivery-Id": delivery["deliveryId"], "X-Duplicate": "no" if new else "yes"}


@bp.get("/healthz")
def healthz():
    """Say whether Redis answers (200) or not (503)."""
    try:
        current_app.extensions["sms_queue"].connection.ping()
    except RedisError:
        return jsonify(redis="down"), 503
    return jsonify(redis="ok", queued=current_app.extensions["sms_queue"].count)


def _http_error(error: HTTPException):
    if error.code == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"] // 1024
        return jsonify(error=f"the body is too large: at most {limit} KB"), 413
    return jsonify(error=error.description), error.code


def _unexpected(error: Exception):
    # Never a 500 for a message we may not have stored: 503 makes the sender retry.
    current_app.logger.exception("unexpected error")
    return jsonify(error="the receiver failed; try again"), 503


def create_app(config: dict | None = None) -> Flask:
    """The receiver app. `config` overrides the settings (REDIS_URL, SMS_JOB...).

    SMS_JOB is the dotted name of the job function workers run (environment: SMS_JOB);
    by default the secure worker when SIGNATURE_SECRET is set, else the plain one.
    """
    app = Flask(__name__)
    settings = load_settings()
    default_job = "process_signed_message" if settings.signature_secret else "process_message"
    app.config.from_mapping(
        REDIS_URL=settings.redis_url,
        SMS_JOB=os.environ.get("SMS_JOB") or f"solutions.jobs.{default_job}",
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.config.update(config or {})
    app.extensions["sms_queue"] = intake.get_queue(connect(app.config["REDIS_URL"]))
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    return app
