"""Jobs and piecewise decoding, on a fake engine: bounded pieces cut at pauses, timestamps in the
whole file, the audio-length limit, and a departed client stopping its job."""

from __future__ import annotations

import io
import threading

import av
import numpy as np
import pytest

from conftest import FakeEngine, make_app
from whisper_server import audio
from whisper_server.admission import Admission
from whisper_server.engine import SAMPLE_RATE, Options
from whisper_server.errors import APIError
from whisper_server.jobs import ClientGone, Job
from whisper_server.metrics import Metrics
from whisper_server.state import get_state


def encode(samples: np.ndarray, container: str = "wav", codec: str = "pcm_s16le") -> io.BytesIO:
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as file:
        stream = file.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for start in range(0, pcm.size, SAMPLE_RATE):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + SAMPLE_RATE], format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                file.mux(packet)
        for packet in stream.encode(None):
            file.mux(packet)
    out.seek(0)
    return out


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


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


def job(engine, upload, client_gone=lambda: False, piece_seconds=30.0, admission=None, stats=None):
    return Job(
        admission=admission or Admission(1, 4),
        engine=engine,
        options=Options(prompt="Names: Ada."),
        upload=upload,
        max_audio_seconds=3600,
        piece_seconds=piece_seconds,
        metrics=Metrics(Admission(1, 1)),
        stats=stats if stats is not None else {},
        client_gone=client_gone,
    )


def test_segments_across_pieces_carry_whole_file_times_ids_and_context():
    engine = FakeEngine()
    samples = np.concatenate([tone(25), silence(2), tone(25), silence(2), tone(10)])
    the_job = job(engine, encode(samples))
    segments = list(the_job.segments())
    assert len(engine.calls) >= 2
    assert [s.id for s in segments] == list(range(len(segments)))
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and starts[-1] > 30
    assert engine.calls[0].prompt == "Names: Ada." and engine.calls[0].context is None
    assert engine.calls[1].prompt == "Names: Ada." and "General Kenobi." in engine.calls[1].context
    assert engine.calls[1].language == "en"
    assert the_job.info.duration == pytest.approx(64, abs=0.1)
    assert the_job.ticket._closed


def test_a_queued_job_whose_client_left_is_dropped_before_it_runs(wav_bytes):
    admission = Admission(1, 4)
    gone = threading.Event()
    engine = FakeEngine()
    stats: dict = {}
    waiting = job(engine, io.BytesIO(wav_bytes), client_gone=gone.is_set, admission=admission, stats=stats)
    with admission.ticket() as busy, busy.run():
        gone.set()
        with pytest.raises(ClientGone) as left:
            list(waiting.segments())
    assert left.value.stage == "queued" and stats["status"] == 499
    assert engine.calls == [] and admission.waiting == 0 and admission.running == 0


def test_a_running_job_stops_at_the_next_segment_when_its_client_leaves():
    calls = {"n": 0}

    def gone_after_first_segment() -> bool:
        calls["n"] += 1
        return segments_seen["n"] >= 1

    segments_seen = {"n": 0}
    engine = FakeEngine()
    running = job(engine, encode(np.concatenate([tone(25), silence(2), tone(25)])), gone_after_first_segment)
    with pytest.raises(ClientGone) as left:
        for _ in running.segments():
            segments_seen["n"] += 1
    assert left.value.stage == "running"
    assert segments_seen["n"] == 1 and len(engine.calls) == 1
    assert running.ticket._closed


def test_cancelled_requests_are_logged_499_and_counted(wav_bytes, caplog):
    app = make_app()
    caplog.set_level("INFO", logger="whisper_server.access")
    environ = {"waitress.client_disconnected": lambda: True}
    response = app.test_client().post(
        "/v1/audio/transcriptions",
        content_type="multipart/form-data",
        data={"model": "whisper-1", "file": (io.BytesIO(wav_bytes), "a.wav")},
        environ_overrides=environ,
    )
    assert response.status_code == 499
    response.close()
    assert any("status=499" in r.getMessage() for r in caplog.records)
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'whisper_cancelled_total{stage="running"} 1.0' in metrics


def test_a_stream_whose_client_left_stops_and_is_logged_499(wav_bytes, caplog):
    app = make_app()
    caplog.set_level("INFO", logger="whisper_server.access")
    response = app.test_client().post(
        "/v1/audio/transcriptions",
        content_type="multipart/form-data",
        data={"model": "whisper-1", "stream": "true", "file": (io.BytesIO(wav_bytes), "a.wav")},
        environ_overrides={"waitress.client_disconnected": lambda: True},
    )
    assert response.status_code == 200  # the headers went out before the client left
    assert response.get_data(as_text=True) == ": accepted\n\n"  # and then nothing more
    response.close()
    assert any("status=499" in r.getMessage() for r in caplog.records)
    admission = get_state(app).admission
    assert admission.running == 0 and admission.waiting == 0


def test_the_model_asks_the_running_request_before_each_call():
    """A window can take many model calls (temperature fallback): each asks first, so a departed
    client's work stops within one call, not one segment."""
    import ctranslate2

    from whisper_server.engine.batcher import Batcher, _checked

    calls = []

    class Inner:
        is_multilingual = False
        device = "cpu"

        def encode(self, features, to_cpu=False):
            calls.append("encode")
            return features

        def generate(self, encoded, prompts, **kwargs):
            calls.append("generate")
            return [None] * len(prompts)

    model = Batcher(Inner(), max_windows=4)
    window = ctranslate2.StorageView.from_array(np.zeros((1, 2, 4), dtype=np.float32))

    def segments():
        model.generate(model.encode(window), [[1]])
        model.generate(model.encode(window), [[1]])
        yield "first"
        model.generate(model.encode(window), [[1]])
        yield "second"

    def check():
        if len(calls) >= 2:
            raise ClientGone("running")

    seen = []
    with pytest.raises(ClientGone):
        for segment in _checked(segments(), check):
            seen.append(segment)
    assert seen == [] and calls == ["encode", "generate"]
    assert model.is_multilingual is False
    model.generate(model.encode(window), [[1]])  # outside a request's segments nothing is asked
    assert calls[-1] == "generate"
