"""The whisper-server command: configure, serve, load the model, report ready."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Optional, Sequence

from whisper_server import logs, serving
from whisper_server.app import create_app
from whisper_server.config import ConfigError, load_config
from whisper_server.engine import ModelLoadError, load_engine
from whisper_server.residency import limit_arenas
from whisper_server.state import get_state

log = logging.getLogger("whisper_server")


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        config = load_config(argv)
    except ConfigError as exc:
        print(f"whisper-server: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_dir)
    limit_arenas()  # before any thread starts: an unload's memory then goes back (residency.py)
    app = create_app(config)
    try:
        server = serving.create_server(app, config)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", config.host, config.port, exc)
        return 1

    # Wyoming listens before HTTP answers and before the model loads: a taken port fails at once, and a
    # client that waited for /health finds the port open. Until the model is ready, Wyoming requests get
    # model_loading, and a describe waits for it.
    state = get_state(app)
    wyoming = None
    if config.wyoming_port:
        from whisper_server.wyoming_service import WyomingService

        wyoming_host = config.wyoming_host or config.host
        wyoming = WyomingService(
            state, wyoming_host, config.wyoming_port, config.wyoming_allowed_clients, config.wyoming_zeroconf
        )
        try:
            wyoming.start()
        except OSError as exc:
            log.error("cannot listen for Wyoming on %s:%s: %s", wyoming_host, config.wyoming_port, exc)
            server.close()
            return 1
        log.info(
            "wyoming: listening on tcp://%s:%s; clients allowed: %s",
            wyoming_host,
            config.wyoming_port,
            ",".join(config.wyoming_allowed_clients) or "any (Wyoming has no authentication)",
        )
    threading.Thread(target=server.run, name="http", daemon=True).start()
    log.info("listening on http://%s:%s; loading model %s", config.host, config.port, config.model)
    try:
        loaded = load_engine(config)
    except ModelLoadError as exc:
        log.error("cannot start: %s", exc)
        if wyoming is not None:
            wyoming.close()
        server.close()
        return 1
    state.set_loaded(loaded)
    log.info(
        "ready: model=%s device=%s compute_type=%s workers=%d max_queue=%d vad=%s batch_size=%d streams=%d "
        "sequential_s=%g cpu_threads=%d auth=%s allowed_hosts=%s idle_unload_s=%g wyoming_port=%s",
        config.model,
        loaded.device,
        loaded.compute_type,
        config.workers,
        config.max_queue,
        config.vad,
        loaded.batch_size,
        loaded.streams,
        loaded.sequential_seconds,
        config.cpu_threads,
        "on" if config.api_key else "off",
        ",".join(config.allowed_hosts) or "any",
        config.idle_unload_seconds,
        config.wyoming_port or "off",
    )

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info(
        "shutting down: refusing new requests, %d in flight get up to %gs to finish",
        state.inflight,
        config.shutdown_grace,
    )
    if not state.drain(config.shutdown_grace):
        log.warning(
            "shutdown grace of %gs is over; closing with %d requests in flight", config.shutdown_grace, state.inflight
        )
    if wyoming is not None:
        wyoming.close()
    state.residency.close()
    server.close()
    log.info("stopped")
    return 0
