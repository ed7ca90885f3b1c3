"""The application factory and the per-request hooks. The state the app carries is in state.py."""

from __future__ import annotations

import io
import logging
import re
import time
import urllib.parse
import uuid
from typing import Optional

from flask import Flask, Request, g, request

from whisper_server import auth, errors
from whisper_server.admission import Admission
from whisper_server.config import Config
from whisper_server.engine import LoadedEngine
from whisper_server.state import State, attach, get_state

access_log = logging.getLogger("whisper_server.access")

MAX_HEADER_BYTES = 64 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class InMemoryRequest(Request):
    """Multipart file parts stay in memory: Werkzeug would spool parts over 500 KiB to /tmp.
    The upload limit (MAX_CONTENT_LENGTH) bounds what this holds."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def loggable(text: str, limit: int = 200) -> str:
    """What a client sent, made safe for a one-line log record: anything outside printable ASCII
    (newlines above all, which would forge records), spaces, '=' and '%' percent-encoded, then cut."""
    safe = urllib.parse.quote(text, safe="/!$&'()*+,;:@-._~")
    return safe if len(safe) <= limit else safe[:limit] + "..."


def create_app(config: Config, loaded: Optional[LoadedEngine] = None) -> Flask:
    app = Flask("whisper_server")
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    state = State(config=config, admission=Admission(config.workers, config.max_queue))
    attach(app, state)
    if loaded is not None:
        state.set_loaded(loaded)

    from whisper_server.api import api
    from whisper_server.ops import ops

    app.register_blueprint(api)
    app.register_blueprint(ops)
    errors.register(app)
    _register_hooks(app)
    return app


def _register_hooks(app: Flask) -> None:
    state = get_state(app)
    metrics = state.metrics

    @app.before_request
    def _start():
        state.enter()
        g.entered = True
        given = request.headers.get("X-Request-ID", "")
        # fullmatch: match() with "$" would let a trailing newline through, and into the log.
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        g.started = time.monotonic()
        # Filled in by the transcription views, read when the response closes (after streaming).
        g.stats = {"audio_s": None, "proc_s": None, "language": None}
        # First: a page that rebound its own name to this address gets nothing, not even /health.
        auth.require_allowed_host(state.config, request.environ.get("HTTP_HOST"))
        header_bytes = sum(len(k) + len(v) + 4 for k, v in request.headers.items())
        if header_bytes > MAX_HEADER_BYTES:
            raise errors.APIError(
                431,
                f"Request headers too large ({header_bytes} bytes; limit {MAX_HEADER_BYTES}).",
                code="headers_too_large",
            )
        if state.draining.is_set() and request.path.startswith("/v1/"):
            raise errors.shutting_down()

    @app.after_request
    def _finish(response):
        response.headers["X-Request-ID"] = g.request_id
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        stats, started, request_id = g.stats, g.started, g.request_id
        method, path, status = loggable(request.method), loggable(request.path), response.status_code

        def _log() -> None:
            # A stream's status went out as 200 before its client left; the log tells what happened.
            final = stats.get("status") or status
            elapsed = time.monotonic() - started
            metrics.requests.labels(endpoint, str(final)).inc()
            if endpoint.startswith("/v1/audio"):
                metrics.latency.labels(endpoint).observe(elapsed)
            audio_s, proc_s = stats["audio_s"], stats["proc_s"]
            rtf = f"{proc_s / audio_s:.3f}" if audio_s and proc_s is not None else "-"
            if endpoint in ("/health", "/metrics") and final < 400:
                return  # probes would drown the request log
            access_log.info(
                "request_id=%s method=%s path=%s status=%s audio_s=%s proc_s=%s rtf=%s language=%s total_s=%.3f",
                request_id,
                method,
                path,
                final,
                f"{audio_s:.2f}" if audio_s is not None else "-",
                f"{proc_s:.3f}" if proc_s is not None else "-",
                rtf,
                stats["language"] or "-",
                elapsed,
            )

        response.call_on_close(_log)
        if g.pop("entered", False):
            # After the last byte is sent (a stream's too): only then may shutdown close the socket.
            response.call_on_close(state.leave)
        return response
