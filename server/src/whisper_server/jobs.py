"""A job: one admitted transcription request, from its place in the queue to its last segment.

It owns its ticket in the queue, its compressed upload (held once, never decoded while waiting),
its decoding piece by piece, its statistics, the check that its client is still there, and the
audio-duration limit. The views only parse, submit, then stream or format what it yields.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import BinaryIO, Callable, Iterator, Optional

from whisper_server import audio
from whisper_server.admission import Admission, Ticket
from whisper_server.engine.types import Engine, Info, Options, Segment, to_words
from whisper_server.metrics import Metrics
from whisper_server.residency import Residency

# How much of the text so far is handed to the next piece as its prompt, so it reads on.
CONTEXT_CHARS = 200


class ClientGone(Exception):
    """The client disconnected; the job stopped. `stage` is queued or running."""

    def __init__(self, stage: str):
        super().__init__(f"client disconnected while {stage}")
        self.stage = stage


class Job:
    def __init__(
        self,
        *,
        admission: Admission,
        engine: Engine,
        options: Options,
        upload: BinaryIO,
        max_audio_seconds: float,
        piece_seconds: float,
        metrics: Metrics,
        stats: dict,
        client_gone: Callable[[], bool] = lambda: False,
        residency: Optional[Residency] = None,
    ):
        """Takes a place in the queue (raises QueueFull) holding only the compressed upload."""
        self.ticket: Ticket = admission.admit()
        self._engine = engine
        self._options = options
        self._upload: Optional[BinaryIO] = upload
        self._max_audio_seconds = max_audio_seconds
        self._piece_seconds = piece_seconds
        self._metrics = metrics
        self._client_gone = client_gone
        self._residency = residency
        self.stats = stats
        self.info: Optional[Info] = None  # set when the last segment has been yielded
        self._stage = "queued"

    def _check(self) -> None:
        if self._client_gone():
            self._metrics.cancelled.labels(self._stage).inc()
            self.stats["status"] = 499
            raise ClientGone(self._stage)

    def segments(self) -> Iterator[Segment]:
        """Waits for a worker, then decodes and transcribes piece by piece, yielding each segment as
        it is decoded, with times in the whole file. Raises ClientGone within about a segment of
        work after the client leaves, APIError for bad audio. Closes the job when it ends."""
        try:
            with self.ticket.run(self._check), self._hold():
                self._stage = "running"
                began = time.monotonic()
                yield from self._transcribe()
                self.stats["proc_s"] = time.monotonic() - began
            info = self.info
            self._metrics.audio_seconds.inc(info.duration)
            if info.duration:
                self._metrics.realtime_factor.observe(self.stats["proc_s"] / info.duration)
        finally:
            self.close()

    def _hold(self):
        """The model, loaded (an idle unload may have dropped it), while this job runs."""
        return self._residency.hold(self._check) if self._residency is not None else contextlib.nullcontext()

    def _transcribe(self) -> Iterator[Segment]:
        options, language, text, count, end = self._options, None, "", 0, 0.0
        for offset, piece in audio.pieces(
            self._upload,
            max_seconds=self._max_audio_seconds,
            piece_seconds=self._piece_seconds,
            check=self._check,
        ):
            self._check()
            if text:
                # Later pieces keep the first piece's language, and may read on from the text so far.
                options = dataclasses.replace(self._options, language=language, context=text[-CONTEXT_CHARS:])
            segments, info = self._engine.transcribe(piece, options, self._check)
            if language is None:
                language = info.language
                self.stats["language"] = language
            for segment in segments:
                yield _shifted(segment, offset, count)
                count += 1
                text += segment.text
                self._check()
            end = offset + audio.duration(piece)
            self.stats["audio_s"] = end
        self.info = Info(language=language or "en", duration=end)

    def close(self) -> None:
        """Gives the place back and drops the upload. Idempotent."""
        self.ticket.close()
        self._upload = None


def _shifted(segment: Segment, offset: float, index: int) -> Segment:
    if offset == 0 and segment.id == index:
        return segment
    return dataclasses.replace(
        segment,
        id=index,
        seek=segment.seek + int(round(offset * 100)),
        start=segment.start + offset,
        end=segment.end + offset,
        words=to_words(segment.words, offset),
    )
