"""Serve a receiver with a production WSGI server.

gunicorn on Linux and macOS (several processes, so both cores work); waitress on
Windows, where gunicorn does not run, or when asked for. Never Flask's
development server for anything measured or shown as production.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing this module (for the CLI's choices) must not load Flask
    from flask import Flask

SERVERS = ("gunicorn", "waitress")
PROCESSES, THREADS = 2, 8  # two processes keep both cores busy; threads wait on Redis and the network


def default_server() -> str:
    """gunicorn where it runs, else waitress."""
    if sys.platform == "win32":
        return "waitress"
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return "waitress"
    return "gunicorn"


def serve(factory: Callable[[], Flask], host: str, port: int, *, server: str | None = None,
          processes: int = PROCESSES, threads: int = THREADS) -> None:
    """Run the app made by `factory` until Ctrl+C or SIGTERM."""
    server = server or default_server()
    if server == "waitress":
        from waitress import serve as waitress_serve

        waitress_serve(factory(), host=host, port=port, threads=threads, channel_timeout=10,
                       connection_limit=200, ident="webhooks-workshop")
        return
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in {"bind": f"{host}:{port}", "workers": processes, "threads": threads,
                               "worker_class": "gthread", "timeout": 30, "graceful_timeout": 5, "keepalive": 5,
                               "limit_request_line": 8190, "loglevel": "warning", "accesslog": None}.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return factory()  # in each worker process, after the fork

    Gunicorn().run()
