"""Bounded admission: at most `workers` transcriptions run, at most `max_queue` wait; the rest get 429.

A request takes a ticket holding only its compressed upload; it decodes once a worker picks it up,
so waiting requests cost no decoded audio. Nothing is dropped silently: a request either holds a
ticket or is refused at once.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from whisper_server.engine.types import WAIT_POLL


class QueueFull(Exception):
    def __init__(self, retry_after: int):
        super().__init__("queue full")
        self.retry_after = retry_after


class Admission:
    def __init__(self, workers: int, max_queue: int):
        self.workers = workers
        self.capacity = workers + max_queue
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        # Recent processing time and when each running one started, to tell a refused client when
        # to come back.
        self._mean_seconds = 1.0
        self._run_starts: list[float] = []

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._admitted - self._running

    def retry_after(self) -> int:
        """Seconds until one place frees: when the oldest running transcription should end (a
        waiting one then starts and leaves the queue), from recent run times. At least a second."""
        with self._lock:
            oldest = min(self._run_starts, default=None)
            mean = self._mean_seconds
        if oldest is None:
            return 1
        return max(1, math.ceil(mean - (time.monotonic() - oldest)))

    def admit(self) -> Ticket:
        """A place in the queue, or QueueFull. The holder must close() it."""
        with self._lock:
            full = self._admitted >= self.capacity
            if not full:
                self._admitted += 1
        if full:
            raise QueueFull(self.retry_after())
        return Ticket(self)

    @contextmanager
    def ticket(self) -> Iterator[Ticket]:
        ticket = self.admit()
        try:
            yield ticket
        finally:
            ticket.close()

    def acquire(self, check: Callable[[], None]) -> float:
        """Waits for a worker slot, calling check() every WAIT_POLL seconds meanwhile (it raises to
        give up the wait); returns when the run started, which release() is given back."""
        while not self._slots.acquire(timeout=WAIT_POLL):
            check()
        started = time.monotonic()
        with self._lock:
            self._running += 1
            self._run_starts.append(started)
        return started

    def release(self, started: float, seconds: float) -> None:
        """Frees the worker slot of the run that acquire() began at `started`, which took `seconds`."""
        with self._lock:
            self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds
            self._running -= 1
            self._run_starts.remove(started)
        self._slots.release()

    def leave(self) -> None:
        """Gives an admitted request's place in the queue back."""
        with self._lock:
            self._admitted -= 1


class Ticket:
    """An admitted request. run() blocks until a worker slot is free; close() gives the place back."""

    def __init__(self, admission: Admission):
        self._admission = admission
        self._holding: float | None = None  # when this ticket's run started, while it holds a slot
        self._closed = False
        # A job closes its ticket when it ends and its response again when it closes, maybe on
        # another thread: the slot and the place are each given back once.
        self._lock = threading.Lock()

    @contextmanager
    def run(self, check: Callable[[], None] = lambda: None) -> Iterator[None]:
        """Waits for a worker slot, calling check() every WAIT_POLL seconds meanwhile (it raises to
        give up the wait, when the client has gone)."""
        self._holding = self._admission.acquire(check)
        try:
            yield
        finally:
            self._release_slot()

    def _release_slot(self) -> None:
        with self._lock:
            started, self._holding = self._holding, None
        if started is not None:
            self._admission.release(started, time.monotonic() - started)

    def close(self) -> None:
        """Idempotent: a job closes its ticket when it ends, and again when its response closes."""
        self._release_slot()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._admission.leave()
