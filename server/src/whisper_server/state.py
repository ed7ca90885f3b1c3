"""The server state the endpoints share, and the one place an app keeps it (get_state)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from flask import Flask, current_app

from whisper_server.admission import Admission
from whisper_server.config import Config
from whisper_server.engine import LoadedEngine
from whisper_server.metrics import Metrics
from whisper_server.residency import Residency

# The key under which an app holds its State in app.extensions.
_KEY = "whisper"


def model_name(model: str) -> str:
    """The id a model is listed under: a hub name as given, a folder by its name."""
    return model.rstrip("/").split("/")[-1] if model.startswith(("/", ".", "~")) else model


@dataclass
class State:
    """What the endpoints share: the config, the loaded engine (None until ready), the queue, the
    metrics, counters and start time."""

    config: Config
    admission: Admission
    started: float = field(default_factory=time.monotonic)
    loaded: Optional[LoadedEngine] = None
    # Whether the loaded engine's weights are in memory (idle unload); set with `loaded`.
    residency: Optional[Residency] = None
    warnings: list[str] = field(default_factory=list)
    # Set on SIGTERM: /v1 answers 503 shutting_down while what is in flight finishes.
    draining: threading.Event = field(default_factory=threading.Event)
    inflight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The app's own Prometheus registry, reading the queue and the engine's batches from here.
    metrics: Metrics = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.admission, self)

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
        residency = Residency(loaded.engine, self.config.idle_unload_seconds, self.metrics)
        with self._lock:
            self.loaded = loaded
            self.residency = residency
            self.warnings.extend(loaded.warnings)

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    @property
    def model_state(self) -> str:
        """loading (at start), then ready, unloaded or loading (again); see residency.py."""
        return self.residency.state if self.residency is not None else "loading"

    @property
    def model_ids(self) -> tuple[str, ...]:
        """The names the loaded model answers to: the aliases, then its own name."""
        aliases, own = self.config.model_aliases, model_name(self.config.model)
        return aliases if own in aliases else (*aliases, own)


def attach(app: Flask, state: State) -> None:
    """Makes `state` the one get_state(app) returns."""
    app.extensions[_KEY] = state


def get_state(app: Optional[Flask] = None) -> State:
    """The State of `app`, or of the app handling the current request."""
    return (current_app if app is None else app).extensions[_KEY]
