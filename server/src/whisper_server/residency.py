"""Whether the model's weights are in memory: loaded, unloaded after an idle spell (or on request), and
loaded again by the next request, so a gaming PC gets its VRAM back while nobody is talking.

Every transcription holds the model while it runs (hold()); an unload waits until none does, and keeps
new ones waiting meanwhile. A request that finds the model unloaded loads it, and the requests that
come while it loads wait in the queue, as they would for a worker, checking that their client is
still there. The engine's own unload()/load() (CTranslate2's unload_model/load_model) free and restore
the memory; an engine without them (a test's fake) only changes state.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from whisper_server.engine.types import WAIT_POLL

log = logging.getLogger("whisper_server")

READY, UNLOADED, LOADING = "ready", "unloaded", "loading"
# How long an unload asked for waits for running transcriptions to end.
UNLOAD_WAIT_S = 30.0


def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def limit_arenas(count: int = 2) -> None:
    """Caps glibc's malloc arenas (M_ARENA_MAX) before the threads start. With one arena per thread
    (waitress's, the batcher's, CTranslate2's), memory freed by an unload stays scattered among them
    and every reload grows the process: base's RSS rose from 155 to 284 MiB unloaded over six cycles.
    With two it settles (168 MiB unloaded, 333 MiB loaded). Model tensors are mmap-sized, so the cap
    costs no contention."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-8, count)  # M_ARENA_MAX


def _trim() -> None:
    """Hands freed heap back to the system (glibc keeps it otherwise), so RSS shows the unload."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class Residency:
    def __init__(self, engine, idle_seconds: float = 0.0, metrics=None, clock: Callable[[], float] = time.monotonic):
        self._engine = engine
        self.idle_seconds = idle_seconds
        self._metrics = metrics
        self._clock = clock
        self._cond = threading.Condition()
        self.state = READY
        self._users = 0
        self._closing = False  # an unload waits for the users to finish: new ones wait too
        self.last_used = clock()
        self._stop = threading.Event()
        if idle_seconds > 0:
            threading.Thread(target=self._watch, name="idle-unload", daemon=True).start()

    @property
    def users(self) -> int:
        return self._users

    def idle_for(self) -> float:
        with self._cond:
            return 0.0 if self._users else self._clock() - self.last_used

    @contextmanager
    def hold(self, check: Callable[[], None] = lambda: None) -> Iterator[None]:
        """The model, loaded, for as long as the block runs. Loads it when it is unloaded; waits while
        it loads or unloads, calling check() every WAIT_POLL seconds (it raises to give up)."""
        with self._cond:
            while self._closing or self.state == LOADING:
                self._cond.wait(WAIT_POLL)
                check()
            loader = self.state == UNLOADED
            if loader:
                self.state = LOADING
            else:
                self._users += 1
        if loader:
            self._load("request", hold=True)
        try:
            yield
        finally:
            with self._cond:
                self._users -= 1
                self.last_used = self._clock()
                self._cond.notify_all()

    def load(self) -> str:
        """Loads the model if it is unloaded (waits if it is loading); returns the state."""
        with self._cond:
            while self._closing or self.state == LOADING:
                self._cond.wait(WAIT_POLL)
            if self.state != UNLOADED:
                return self.state
            self.state = LOADING
        self._load("request")
        return self.state

    def _load(self, reason: str, hold: bool = False) -> None:
        """Called with the state set to LOADING by this thread alone. With `hold`, the caller becomes a
        user in the same step that makes the model ready: an unload waiting for the load to end must
        not find it ready and unused in between."""
        began = self._clock()
        try:
            loader = getattr(self._engine, "load", None)
            if loader is not None:
                loader()
        except Exception as exc:
            log.exception("could not load the model again")
            with self._cond:
                self.state = UNLOADED
                self._cond.notify_all()
            from whisper_server.errors import model_load_failed  # errors.py imports the state, which imports this

            raise model_load_failed(exc) from None
        seconds = self._clock() - began
        with self._cond:
            self.state = READY
            if hold:
                self._users += 1
            self.last_used = self._clock()
            self._cond.notify_all()
        if self._metrics is not None:
            self._metrics.model_loads.labels(reason).inc()
            self._metrics.model_load_seconds.observe(seconds)
        log.info("model loaded again (%s) in %.2fs", reason, seconds)

    def unload(self, reason: str = "request", wait: float = UNLOAD_WAIT_S) -> str:
        """Unloads the model once no transcription holds it, waiting up to `wait` seconds (new ones
        wait meanwhile); APIError model_busy when they do not end in time. Returns the state."""
        with self._cond:
            while self.state == LOADING or self._closing:
                self._cond.wait(WAIT_POLL)
            if self.state != READY:
                return self.state
            self._closing = True
            deadline = self._clock() + wait
            while self._users:
                left = deadline - self._clock()
                if left <= 0:
                    self._closing = False
                    self._cond.notify_all()
                    from whisper_server.errors import model_busy

                    raise model_busy(wait)
                self._cond.wait(min(left, WAIT_POLL))
            began = self._clock()
            try:
                unloader = getattr(self._engine, "unload", None)
                # False: the engine still had work in flight (a departed client's model call finishing)
                # and kept its weights; the state stays ready rather than say what is not so.
                done = unloader(min(5.0, max(0.0, deadline - self._clock()))) if unloader is not None else True
                if done is not False:
                    self.state = UNLOADED
            finally:
                self._closing = False
                self._cond.notify_all()
            if self.state != UNLOADED:
                from whisper_server.errors import model_busy

                raise model_busy(wait)
        _trim()
        seconds = self._clock() - began
        if self._metrics is not None:
            self._metrics.model_unloads.labels(reason).inc()
            self._metrics.model_unload_seconds.observe(seconds)
        log.info("model unloaded (%s) in %.2fs", reason, seconds)
        return self.state

    def _due(self) -> bool:
        with self._cond:
            return (
                self.state == READY
                and not self._users
                and not self._closing
                and self._clock() - self.last_used >= self.idle_seconds
            )

    def _watch(self) -> None:
        tick = min(1.0, max(0.05, self.idle_seconds / 4))
        while not self._stop.wait(tick):
            if self._due():
                try:
                    self.unload("idle", wait=0)
                except Exception as exc:
                    if getattr(exc, "code", None) == "model_busy":
                        continue  # a request came in meanwhile
                    log.exception("idle unload failed")

    def close(self) -> None:
        self._stop.set()
