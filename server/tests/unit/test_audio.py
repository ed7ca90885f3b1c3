"""Decoding in pieces: bounded pieces cut at pauses, and the audio-length limit (from the container or
while decoding, and in the envelope)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from conftest import encode, make_app, silence, tone
from whisper_server import audio
from whisper_server.engine import SAMPLE_RATE
from whisper_server.errors import APIError


def loud_spans(samples: np.ndarray) -> list[dict]:
    """A stand-in VAD: 'speech' wherever the signal is loud, in 50 ms steps."""
    step = SAMPLE_RATE // 20
    loud = np.abs(samples[: samples.size // step * step]).reshape(-1, step).max(axis=1) > 0.05
    spans, start = [], None
    for i, on in enumerate(loud):
        if on and start is None:
            start = i * step
        if not on and start is not None:
            spans.append({"start": start, "end": i * step})
            start = None
    if start is not None:
        spans.append({"start": start, "end": loud.size * step})
    return spans


def test_pieces_are_bounded_cut_at_pauses_and_cover_everything():
    # 100 s: speech with a 1 s pause every 12 s. Pieces of at most 40 s must end inside a pause.
    parts = []
    while sum(p.size for p in parts) < 100 * SAMPLE_RATE:
        parts += [tone(11), silence(1)]
    samples = np.concatenate(parts)[: 100 * SAMPLE_RATE]
    got = list(audio.pieces(encode(samples), max_seconds=600, piece_seconds=40, find_speech=loud_spans))
    assert len(got) >= 3
    offset = 0.0
    for start, piece in got:
        assert start == pytest.approx(offset, abs=1e-6)
        assert piece.size <= 40 * SAMPLE_RATE
        offset += piece.size / SAMPLE_RATE
    assert offset == pytest.approx(100, abs=0.05)
    for start, piece in got[:-1]:
        end = start + piece.size / SAMPLE_RATE
        assert end % 12 > 11 - 0.01, f"cut at {end:.2f}s is not in a pause"  # pauses lie at 11..12 s mod 12


def test_cut_falls_back_to_the_quietest_moment_without_a_pause():
    samples = tone(40)
    samples[int(35.5 * SAMPLE_RATE) : int(35.55 * SAMPLE_RATE)] *= 0.01
    cut = audio.cut_point(samples, lambda tail: [{"start": 0, "end": tail.size}])
    assert abs(cut / SAMPLE_RATE - 35.525) < 0.05


def test_audio_past_the_limit_is_413_from_the_container_or_while_decoding():
    with pytest.raises(APIError) as stated:
        audio.probe(encode(tone(5)), max_seconds=3)
    assert stated.value.status == 413 and stated.value.envelope["error"]["code"] == "audio_too_long"
    # Where a container states no duration, the limit holds while decoding (pieces() never trusts
    # the header: it counts what it decodes).
    with pytest.raises(APIError) as decoded:
        list(audio.pieces(encode(tone(5)), max_seconds=3, piece_seconds=30, find_speech=loud_spans))
    assert decoded.value.status == 413 and decoded.value.envelope["error"]["code"] == "audio_too_long"


def test_the_server_answers_audio_too_long_in_the_envelope(wav_bytes):
    client = make_app(max_audio_seconds=0.5).test_client()
    response = client.post(
        "/v1/audio/transcriptions",
        content_type="multipart/form-data",
        data={"model": "whisper-1", "file": (io.BytesIO(wav_bytes), "a.wav")},
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "audio_too_long"
