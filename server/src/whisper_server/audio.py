"""Decode an upload in memory: bytes in, 16 kHz mono float32 out. No temp files."""

from __future__ import annotations

import io

import av
import numpy as np
from faster_whisper import decode_audio

from whisper_server.engine import SAMPLE_RATE
from whisper_server.errors import APIError

# What a broken or non-audio upload makes PyAV raise. Anything else is a real fault (500).
_DECODE_ERRORS = (av.error.FFmpegError, IndexError, ValueError, EOFError, UnicodeDecodeError)


def decode(data: bytes) -> np.ndarray:
    if not data:
        raise APIError(400, "The uploaded file is empty.", param="file", code="empty_file")
    try:
        audio = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except _DECODE_ERRORS as exc:
        raise APIError(
            400,
            "Audio file could not be decoded or its format is not supported "
            f"(supported: anything ffmpeg reads, e.g. ogg/opus, m4a, mp3, wav, flac, webm): {exc}",
            param="file",
            code="invalid_audio",
        ) from None
    if audio.size == 0:
        raise APIError(400, "The uploaded file holds no audio.", param="file", code="invalid_audio")
    return audio


def duration(audio: np.ndarray) -> float:
    return audio.shape[0] / SAMPLE_RATE
