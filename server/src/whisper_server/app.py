"""The application factory, the server state it carries, and the per-request hooks."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Optional

from flask import Flask, Request, g, request

from whisper_server import auth, errors
from whisper_server.admission import Admission
from whisper_server.config import Config
from whisper_server.engine import LoadedEngine
from whisper_server.metrics import Metrics

access_log = logging.getLogger("whisper_server.access")

MAX_HEADER_BYTES = 64 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class InMemoryRequest(Request):
    """Multipart file parts stay in memory: Werkzeug would spool parts over 500 KiB to /tmp.
    The upload limit (MAX_CONTENT_LENGTH) bounds what this holds."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


@dataclass
class State:
    """What the endpoints share: the loaded engine (None until ready), counters and start time."""

    config: Config
    admission: Admission
    started: float = field(default_factory=time.monotonic)
    loaded: Optional[LoadedEngine] = None
    warnings: list[str] = field(default_factory=list)
    # Set on SIGTERM: /v1 answers 503 shutting_down while what is in flight finishes.
    draining: threading.Event = field(default_factory=threading.Event)
    inflight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self) -> None:
        with self._lock:
            self.inflight += 1

    def leave(self) -> None:
        with self._lock:
            self.inflight -= 1

    def drain(self, grace: float) -> bool:
        """Refuse new work, then wait up to `grace` seconds for every request in flight to be sent
        in full. True when none is left."""
        self.draining.set()
        deadline = time.monotonic() + grace
        while True:
            with self._lock:
                if self.inflight == 0:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def set_loaded(self, loaded: LoadedEngine) -> None:
        with self._lock:
            self.loaded = loaded
            self.warnings.extend(loaded.warnings)

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    @property
    def model_ids(self) -> tuple[str, ...]:
        """The names the loaded model answers to: the aliases, then its own name."""
        aliases, own = self.config.model_aliases, model_name(self.config.model)
        return aliases if own in aliases else (*aliases, own)


def loggable(text: str, limit: int = 200) -> str:
    """What a client sent, made safe for a one-line log record: anything outside printable ASCII
    (newlines above all, which would forge records), spaces, '=' and '%' percent-encoded, then cut."""
    safe = urllib.parse.quote(text, safe="/!$&'()*+,;:@-._~")
    return safe if len(safe) <= limit else safe[:limit] + "..."


def model_name(model: str) -> str:
    """The id a model is listed under: a hub name as given, a folder by its name."""
    return model.rstrip("/").split("/")[-1] if model.startswith(("/", ".", "~")) else model


def create_app(config: Config, loaded: Optional[LoadedEngine] = None) -> Flask:
    app = Flask("whisper_server")
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.config["WHISPER"] = config
    admission = Admission(config.workers, config.max_queue)
    state = State(config=config, admission=admission)
    app.extensions["whisper"] = state
    app.extensions["whisper_metrics"] = Metrics(admission, state)
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
    metrics: Metrics = app.extensions["whisper_metrics"]
    state: State = app.extensions["whisper"]

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
            raise errors.APIError(
                503,
                "The server is shutting down (a restart or deploy); retry in a few seconds.",
                code="shutting_down",
                headers={"Retry-After": "5"},
            )

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
