"""The Batcher: one CTranslate2 Whisper shared by every request, decoding windows of several requests
in one model call, and asking each request before its model calls whether its client is still there.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator, Optional

import numpy as np

from whisper_server.engine.types import WAIT_POLL, Segment

# The check of the request whose segments this thread is drawing, if any (see Batcher).
_current = threading.local()


def _poll() -> None:
    check = getattr(_current, "check", None)
    if check is not None:
        check()


class Deferred:
    """What Batcher.encode() returns: the features, to be encoded together with other requests' windows
    when generate() is called. Anything else that needs the encoder output gets it on demand."""

    def __init__(self, batcher: Batcher, features: np.ndarray, to_cpu: bool):
        self.features = features  # [windows, mels, frames], float32, on the CPU
        self._batcher = batcher
        self._to_cpu = to_cpu
        self.encoded: Optional[np.ndarray] = None  # this call's part of a batch's encoder output (CPU only)
        self._real = None

    def materialize(self):
        if self._real is None:
            import ctranslate2

            if self.encoded is not None:
                self._real = ctranslate2.StorageView.from_array(np.ascontiguousarray(self.encoded))
            else:
                features = ctranslate2.StorageView.from_array(self.features)
                self._real = self._batcher.inner.encode(features, to_cpu=self._to_cpu)
        return self._real


class _Call:
    """One generate() call waiting for the batcher: its windows, prompts and settings."""

    def __init__(self, deferred: Deferred, prompts: list, kwargs: dict, key: tuple):
        self.deferred = deferred
        self.prompts = prompts
        self.kwargs = kwargs
        self.key = key
        self.windows = deferred.features.shape[0]
        self.done = threading.Event()
        self.results: Optional[list] = None
        self.error: Optional[BaseException] = None


def _hashable(value):
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


class Batcher:
    """CTranslate2's Whisper, shared by every request, decoding windows of several requests together.

    faster-whisper runs each request in its own thread, unchanged: its options, its temperature
    fallback, its segments and words. Only the model calls meet here. encode() defers the work and
    generate() queues the windows; each of `streams` threads takes the oldest call and everything
    queued that can share its model call (the same decoding settings and prompt layout, which
    CTranslate2 requires of a batch), up to `max_windows`, encodes it (see _encode) and decodes it
    in one generate call. Nothing waits for company: a lone window runs at once, and windows that
    arrive meanwhile join the batch being encoded or form the next one.

    It also asks the running request before each model call whether its client is still there
    (check(), set per thread while segments are drawn); one window can take several calls, as the
    fallback decodes it up to six times."""

    def __init__(self, inner, *, max_windows: int, sot: Optional[int] = None, streams: int = 1):
        self.inner = inner
        self.max_windows = max(1, max_windows)
        self._sot = sot
        self._queue: list[_Call] = []
        self._lock = threading.Condition()
        # Model calls by how many windows they decoded, for /metrics.
        self.calls_by_windows: dict[int, int] = {}
        self._cpu = getattr(inner, "device", "cpu") == "cpu"
        # On a CPU one window is encoded at a time, whichever stream asks: the encoder's attention
        # takes ~50 MiB (tiny) per window while it runs, and streams gain by overlapping one
        # stream's encoding with another's decoding, not two encodings.
        self._encoding = threading.Lock()
        # One thread per model worker (CTranslate2's inter_threads): each takes its own batches, so
        # one batch is encoded while another is decoded.
        for n in range(max(1, streams)):
            threading.Thread(target=self._loop, name=f"whisper-batcher-{n}", daemon=True).start()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    # The model's methods that faster-whisper calls.

    def encode(self, features, to_cpu: bool = False):
        _poll()
        # A copy: the caller's buffer is not ours to keep.
        array = np.array(np.asarray(features), dtype=np.float32, copy=True, order="C")
        return Deferred(self, array if array.ndim == 3 else array[None], to_cpu)

    def generate(self, features, prompts, **kwargs):
        _poll()
        if not isinstance(features, Deferred):
            return self.inner.generate(features, prompts, **kwargs)
        call = _Call(features, [list(p) for p in prompts], kwargs, self._key(prompts, kwargs))
        with self._lock:
            self._queue.append(call)
            self._lock.notify()
        try:
            while not call.done.wait(WAIT_POLL):
                _poll()
        except BaseException:
            with self._lock:
                if call in self._queue:
                    self._queue.remove(call)
            raise
        if call.error is not None:
            raise call.error
        return call.results

    def detect_language(self, features, *args, **kwargs):
        _poll()
        return self.inner.detect_language(_real(features), *args, **kwargs)

    def align(self, features, *args, **kwargs):
        _poll()
        return self.inner.align(_real(features), *args, **kwargs)

    # The batching thread.

    def _key(self, prompts, kwargs) -> tuple:
        """Calls may share a batch when their settings match and their prompts have the same length
        and <|startoftranscript|> position (CTranslate2 refuses a batch otherwise)."""
        layouts = {(len(p), p.index(self._sot) if self._sot in p else -1) for p in prompts}
        return (_hashable(kwargs), tuple(sorted(layouts)))

    def _take(self) -> list[_Call]:
        """Waits for a call; returns the oldest, and every queued call that can share its model call."""
        with self._lock:
            while not self._queue:
                self._lock.wait()
            first = self._queue.pop(0)
        return [first] + self._joining(first, self.max_windows - first.windows)

    def _joining(self, first: _Call, room: int) -> list[_Call]:
        """Queued calls that can join `first`'s model call, oldest first, within `room` windows."""
        taken: list[_Call] = []
        if len(first.key[1]) != 1:  # a call whose own prompts differ in layout runs alone
            return taken
        with self._lock:
            for call in list(self._queue):
                if call.key != first.key:
                    continue
                if call.windows > room:
                    break
                taken.append(call)
                room -= call.windows
                self._queue.remove(call)
        return taken

    def _loop(self) -> None:
        while True:
            calls = self._take()
            try:
                self._decode(calls, self._encode(calls, gather=True))
            except BaseException as exc:  # a batch that fails together is retried call by call
                if len(calls) == 1:
                    calls[0].error = exc
                else:
                    for call in calls:
                        try:
                            self._decode([call], self._encode([call], gather=False))
                        except BaseException as single:
                            call.error = single
            for call in calls:
                call.done.set()

    def _encode(self, calls: list[_Call], *, gather: bool):
        """The encoder output of every window of `calls`, as one StorageView.

        On a CPU the encoder gains nothing from a batch (one window is already a large matrix
        product), while its attention takes ~50 MiB more per window batched. So windows are encoded
        one at a time, and calls that arrive meanwhile join the batch (appended to `calls`): the
        decoder, which gains most from batching, then takes them all. On a GPU the batch is encoded
        at once."""
        import ctranslate2

        if not self._cpu:
            parts = [c.deferred.features for c in calls]
            return ctranslate2.StorageView.from_array(np.concatenate(parts) if len(parts) > 1 else parts[0])
        outputs: list[np.ndarray] = []
        done = 0
        while done < len(calls):
            for call in calls[done:]:
                for i in range(call.windows):
                    window = ctranslate2.StorageView.from_array(call.deferred.features[i : i + 1])
                    with self._encoding:
                        outputs.append(np.asarray(self.inner.encode(window)))
            done = len(calls)
            if gather:
                calls.extend(self._joining(calls[0], self.max_windows - len(outputs)))
        return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]

    def _decode(self, calls: list[_Call], encoded) -> None:
        import ctranslate2

        prompts = [p for c in calls for p in c.prompts]
        if isinstance(encoded, np.ndarray):
            results = self.inner.generate(ctranslate2.StorageView.from_array(encoded), prompts, **calls[0].kwargs)
        else:  # GPU: the features, which generate() encodes in the same call
            results = self.inner.generate(encoded, prompts, **calls[0].kwargs)
        with self._lock:
            self.calls_by_windows[len(prompts)] = self.calls_by_windows.get(len(prompts), 0) + 1
        start = 0
        for call in calls:
            end = start + call.windows
            call.results = results[start:end]
            if isinstance(encoded, np.ndarray):
                call.deferred.encoded = encoded[start:end]
            start = end


def _real(features):
    return features.materialize() if isinstance(features, Deferred) else features


def _checked(segments: Iterator[Segment], check: Callable[[], None]) -> Iterator[Segment]:
    _current.check = check
    try:
        yield from segments
    finally:
        _current.check = None
