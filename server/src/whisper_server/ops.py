"""/health and /metrics: for people, probes and Prometheus. No audio involved.

/health answers anyone with its status (a probe needs no key); the rest of it, the model's path, the
GPU and the version, is for whoever has the key, and so is /metrics."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from whisper_server import __version__, auth, errors
from whisper_server.state import State, get_state

ops = Blueprint("ops", __name__)


@ops.get("/health")
def health():
    state = get_state()
    loaded = state.loaded
    status = "shutting_down" if state.draining.is_set() else state.model_state
    if auth.has_key(state.config, request.headers.get("Authorization")):
        body = _details(state, status)
    else:
        body = {"status": status}
    response = jsonify(body)
    # 503 only while requests are refused: at start and at shutdown. An unloaded model (or one loading
    # again after an unload) still answers: the request waits for it in the queue.
    if status == "shutting_down" or loaded is None:
        response.status_code = 503
        response.headers["Retry-After"] = errors.RETRY_SOON
    return response


def _details(state: State, status: str) -> dict:
    loaded = state.loaded
    return {
        "status": status,
        "model": state.config.model,
        "model_ids": list(state.model_ids),
        "device": loaded.device if loaded else None,
        "compute_type": loaded.compute_type if loaded else None,
        "gpu": loaded.gpu_name if loaded else None,
        "workers": state.config.workers,
        "batch_size": loaded.batch_size if loaded else None,
        "streams": loaded.streams if loaded else None,
        "sequential_s": loaded.sequential_seconds if loaded else None,
        "queue_depth": state.admission.waiting,
        "running": state.admission.running,
        "uptime_s": round(time.monotonic() - state.started, 1),
        "idle_unload_s": state.config.idle_unload_seconds or None,
        "idle_s": round(state.residency.idle_for(), 1) if state.residency else None,
        "wyoming_port": state.config.wyoming_port or None,
        "warnings": list(state.warnings),
        "version": __version__,
    }


@ops.get("/metrics")
def metrics():
    state = get_state()
    auth.require_key(state.config, request.headers.get("Authorization"))
    registry = state.metrics.registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
