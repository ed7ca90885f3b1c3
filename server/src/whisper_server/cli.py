"""The whisper-server command: configure, serve, load the model, report ready."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Optional, Sequence

from waitress.server import create_server

from whisper_server import logs
from whisper_server.app import MAX_HEADER_BYTES, create_app
from whisper_server.config import ConfigError, load_config
from whisper_server.engine import ModelLoadError, load_engine

log = logging.getLogger("whisper_server")


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        config = load_config(argv)
    except ConfigError as exc:
        print(f"whisper-server: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_dir)
    app = create_app(config)
    try:
        server = create_server(
            app,
            host=config.host,
            port=config.port,
            # One thread for every request that may run or wait, plus room for health checks
            # and for answering 429s while the queue is full.
            threads=config.workers + config.max_queue + 4,
            # Open connections, idle keep-alives included; past it, new ones wait in the listen
            # backlog. With the 512 KiB in-memory buffer below, they cost at most ~50 MiB together.
            connection_limit=100,
            # Keeps the channel readable while a request runs, which is how waitress notices a
            # client that left (environ["waitress.client_disconnected"]).
            channel_request_lookahead=1,
            # Oversized bodies up to twice the limit still reach Flask and get OpenAI's 413
            # envelope; beyond that waitress refuses them itself.
            max_request_body_size=2 * config.max_upload_bytes + 1024 * 1024,
            # A body over 512 KiB waits in waitress's anonymous (already unlinked) temporary file,
            # not in memory, so the one in-memory copy of an upload is the one the job holds, and
            # an idle or slow connection costs at most this much memory.
            inbuf_overflow=512 * 1024,
            max_request_header_size=16 * MAX_HEADER_BYTES,
            ident="whisper-server",
        )
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", config.host, config.port, exc)
        return 1
    threading.Thread(target=server.run, name="http", daemon=True).start()
    log.info("listening on http://%s:%s; loading model %s", config.host, config.port, config.model)

    try:
        loaded = load_engine(config)
    except ModelLoadError as exc:
        log.error("cannot start: %s", exc)
        server.close()
        return 1
    app.extensions["whisper"].set_loaded(loaded)
    log.info(
        "ready: model=%s device=%s compute_type=%s workers=%d max_queue=%d vad=%s batch_size=%d streams=%d "
        "cpu_threads=%d auth=%s",
        config.model,
        loaded.device,
        loaded.compute_type,
        config.workers,
        config.max_queue,
        config.vad,
        loaded.batch_size,
        loaded.streams,
        config.cpu_threads,
        "on" if config.api_key else "off",
    )

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    state = app.extensions["whisper"]
    log.info(
        "shutting down: refusing new requests, %d in flight get up to %gs to finish",
        state.inflight,
        config.shutdown_grace,
    )
    if not state.drain(config.shutdown_grace):
        log.warning(
            "shutdown grace of %gs is over; closing with %d requests in flight", config.shutdown_grace, state.inflight
        )
    server.close()
    log.info("stopped")
    return 0
