"""Decode an upload in memory, piece by piece: 16 kHz mono float32 out, never the whole file at once.

A piece is at most `piece_seconds` long and is cut at a pause in speech (Silero VAD, the model
faster-whisper's own VAD filter uses), so no word is split between two pieces. Memory per request is
then bounded by the piece, not by the file: 25 MB of Opus can hold many hours. No temp files.
"""

from __future__ import annotations

from typing import BinaryIO, Callable, Iterator

import av
import numpy as np

from whisper_server.engine.types import SAMPLE_RATE
from whisper_server.errors import APIError, audio_too_long, invalid_audio

# What a broken or non-audio upload makes PyAV raise. Anything else is a real fault (500).
_DECODE_ERRORS = (av.error.FFmpegError, IndexError, ValueError, EOFError, UnicodeDecodeError)
# Where a cut is looked for: the last this many seconds of a full piece.
CUT_SEARCH_SECONDS = 10.0
# The shortest pause worth cutting at.
MIN_PAUSE_SECONDS = 0.3


def _open(upload: BinaryIO):
    """The upload as a container with an audio stream, from its start; else 400 invalid_audio."""
    upload.seek(0)
    try:
        container = av.open(upload, mode="r", metadata_errors="ignore")
    except _DECODE_ERRORS as exc:
        raise invalid_audio(exc) from None
    if not container.streams.audio:
        container.close()
        raise invalid_audio("no audio stream")
    return container


def probe(upload: BinaryIO, max_seconds: float) -> None:
    """Cheap checks before a request is queued: an audio stream exists, and the container's own
    duration, where it has one, is within the limit. Reads headers only."""
    try:
        with _open(upload) as container:
            seconds = container.duration / av.time_base if container.duration else None
    finally:
        upload.seek(0)
    if seconds is not None and seconds > max_seconds:
        raise audio_too_long(max_seconds, seconds)


def _samples(upload: BinaryIO, max_seconds: float, check: Callable[[], None]) -> Iterator[np.ndarray]:
    """Decoded audio as it comes, in the frames the codec gives. Enforces the limit while decoding,
    for containers that do not state their duration. Undecodable frames are skipped, as ffmpeg does."""
    limit = int(max_seconds * SAMPLE_RATE)
    total = 0
    with _open(upload) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            packets = container.demux(stream)
            for packet in packets:
                check()
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    continue
                for frame in frames:
                    for out in resampler.resample(frame):
                        data = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                        total += data.size
                        if total > limit:
                            raise audio_too_long(max_seconds)
                        yield data
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        except _DECODE_ERRORS as exc:
            if total == 0:
                raise invalid_audio(exc) from None
            # A file cut short still holds what came before the break.


def cut_point(audio: np.ndarray, find_speech: Callable[[np.ndarray], list[dict]]) -> int:
    """Where to end a full piece: in the middle of the last pause in its final CUT_SEARCH_SECONDS,
    else at the quietest 50 ms there. `find_speech` gives speech spans in samples (Silero VAD)."""
    search = min(audio.size, int(CUT_SEARCH_SECONDS * SAMPLE_RATE))
    offset = audio.size - search
    tail = audio[offset:]
    spans = find_speech(tail)
    if not spans:
        return audio.size  # all pause: cut at the end
    edges = [0] + [x for span in spans for x in (span["start"], span["end"])] + [search]
    gaps = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]
    pauses = [(a, b) for a, b in gaps if b - a >= MIN_PAUSE_SECONDS * SAMPLE_RATE]
    if pauses:
        start, end = pauses[-1]
        return offset + (start + end) // 2
    frame = SAMPLE_RATE // 20
    usable = (search // frame) * frame
    energy = np.square(tail[search - usable :]).reshape(-1, frame).mean(axis=1)
    return offset + (search - usable) + int(np.argmin(energy)) * frame + frame // 2


def silero_speech(audio: np.ndarray) -> list[dict]:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    return get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=int(MIN_PAUSE_SECONDS * 1000)))


def pieces(
    upload: BinaryIO,
    *,
    max_seconds: float,
    piece_seconds: float,
    check: Callable[[], None] = lambda: None,
    find_speech: Callable[[np.ndarray], list[dict]] = silero_speech,
) -> Iterator[tuple[float, np.ndarray]]:
    """(offset in seconds, audio) for each piece of the upload, in order. Raises APIError 400 for an
    upload that holds no audio, 413 past max_seconds; check() is called often and may raise."""
    size = int(piece_seconds * SAMPLE_RATE)
    buffered: list[np.ndarray] = []
    held = 0
    offset = 0
    for data in _samples(upload, max_seconds, check):
        buffered.append(data)
        held += data.size
        while held >= size:
            audio = np.concatenate(buffered)
            cut = cut_point(audio[:size], find_speech)
            yield offset / SAMPLE_RATE, audio[:cut]
            rest = audio[cut:]
            buffered, held, offset = [rest], rest.size, offset + cut
    if held:
        yield offset / SAMPLE_RATE, np.concatenate(buffered)
    elif offset == 0:
        raise APIError(400, "The uploaded file holds no audio.", param="file", code="invalid_audio")


def duration(audio: np.ndarray) -> float:
    return audio.shape[0] / SAMPLE_RATE
