"""Prometheus metrics, on a registry of the app's own so several apps (tests) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily


class _Batches:
    """Model calls by the number of 30 s windows each decoded, read from the engine's Batcher."""

    def __init__(self, state) -> None:
        self._state = state

    def collect(self):
        family = CounterMetricFamily(
            "whisper_model_calls", "Batched model calls, by how many windows each decoded", labels=["windows"]
        )
        loaded = self._state.loaded
        counts = dict(getattr(loaded.engine, "calls_by_windows", {}) if loaded else {})
        for windows, count in sorted(counts.items()):
            family.add_metric([str(windows)], count)
        yield family


class Metrics:
    def __init__(self, admission, state=None) -> None:
        self.registry = CollectorRegistry()
        if state is not None:
            self.registry.register(_Batches(state))
        self.requests = Counter(
            "whisper_requests_total", "HTTP requests answered", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "whisper_request_duration_seconds",
            "Wall time of transcription requests",
            ["endpoint"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "whisper_audio_seconds_total", "Seconds of audio transcribed", registry=self.registry
        )
        self.realtime_factor = Histogram(
            "whisper_realtime_factor",
            "Processing seconds per second of audio (lower is faster)",
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=self.registry,
        )
        queue = Gauge("whisper_queue_depth", "Requests waiting for a worker", registry=self.registry)
        queue.set_function(lambda: admission.waiting)
        running = Gauge("whisper_inflight", "Transcriptions running now", registry=self.registry)
        running.set_function(lambda: admission.running)
        self.cancelled = Counter(
            "whisper_cancelled_total",
            "Requests stopped because their client disconnected (logged with status 499)",
            ["stage"],
            registry=self.registry,
        )
        self.model_loads = Counter(
            "whisper_model_loads_total",
            "Loads of the model after an unload, by cause",
            ["reason"],
            registry=self.registry,
        )
        self.model_unloads = Counter(
            "whisper_model_unloads_total",
            "Unloads of the model (idle or asked for)",
            ["reason"],
            registry=self.registry,
        )
        self.model_load_seconds = Histogram(
            "whisper_model_load_seconds",
            "Seconds a load after an unload took",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.model_unload_seconds = Histogram(
            "whisper_model_unload_seconds",
            "Seconds an unload took",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=self.registry,
        )
        if state is not None:
            loaded_gauge = Gauge(
                "whisper_model_loaded", "1 while the model's weights are in memory", registry=self.registry
            )
            loaded_gauge.set_function(lambda: 1 if state.model_state == "ready" else 0)
