"""Jobs on a fake engine: segments across pieces carry whole-file times, and a departed client stops its
job, queued or running, down to the next model call."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from conftest import FakeEngine, encode, make_app, silence, tone
from whisper_server.admission import Admission
from whisper_server.engine import Options
from whisper_server.jobs import ClientGone, Job
from whisper_server.metrics import Metrics
from whisper_server.state import get_state


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
