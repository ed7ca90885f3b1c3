"""Bounded admission: at most `workers` transcriptions run, at most `max_queue` wait; the rest get 429.

A request takes a ticket before it decodes its audio, so waiting requests (and their decoded audio)
are bounded too. Nothing is dropped silently: a request either holds a ticket or is refused at once.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from typing import Iterator


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
        # Recent processing time, to tell a refused client when to come back.
        self._mean_seconds = 1.0

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._admitted - self._running

    def retry_after(self) -> int:
        # Time for what is admitted to drain through the workers, at least a second.
        return max(1, math.ceil(self._mean_seconds * self._admitted / self.workers))

    @contextmanager
    def ticket(self) -> Iterator[Ticket]:
        with self._lock:
            if self._admitted >= self.capacity:
                raise QueueFull(self.retry_after())
            self._admitted += 1
        ticket = Ticket(self)
        try:
            yield ticket
        finally:
            ticket._finish()

    def _record(self, seconds: float) -> None:
        with self._lock:
            self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds


class Ticket:
    """An admitted request. run() blocks until a worker slot is free."""

    def __init__(self, admission: Admission):
        self._admission = admission
        self._holding = False

    @contextmanager
    def run(self) -> Iterator[None]:
        import time

        adm = self._admission
        adm._slots.acquire()
        with adm._lock:
            adm._running += 1
        self._holding = True
        started = time.monotonic()
        try:
            yield
        finally:
            adm._record(time.monotonic() - started)
            self._release_slot()

    def _release_slot(self) -> None:
        adm = self._admission
        if self._holding:
            self._holding = False
            with adm._lock:
                adm._running -= 1
            adm._slots.release()

    def _finish(self) -> None:
        self._release_slot()
        with self._admission._lock:
            self._admission._admitted -= 1
