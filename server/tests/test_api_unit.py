"""The HTTP layer on a fake engine: validation, every error status, auth, queue, readiness, streaming."""

from __future__ import annotations

import io
import json
import os
import threading
import time

import pytest
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent

from conftest import FakeEngine, assert_envelope, make_app
from whisper_server.app import create_app
from whisper_server.config import OPENAI_MODEL_NAMES, Config
from whisper_server.engine import LoadedEngine
from whisper_server.state import get_state

URL = "/v1/audio/transcriptions"


def post(client, audio, **fields):
    data = {"model": "whisper-1", **fields}
    if audio is not None:
        data["file"] = (io.BytesIO(audio), "note.wav")
    return client.post(URL, data=data, content_type="multipart/form-data")


def test_json_is_the_default(client, wav_bytes, fake_engine):
    response = post(client, wav_bytes)
    assert response.status_code == 200
    assert response.get_json()["text"] == "Hello there. General Kenobi."
    options = fake_engine.calls[0]
    assert options.task == "transcribe" and options.temperature == 0 and not options.word_timestamps


@pytest.mark.parametrize(
    "fields, timestamps",
    [
        ({}, False),
        ({"response_format": "text"}, False),
        ({"response_format": "verbose_json"}, True),
        ({"response_format": "srt"}, True),
        ({"response_format": "vtt"}, True),
        ({"stream": "true"}, True),
        ({"stream": "true", "response_format": "text"}, True),
    ],
)
def test_segment_times_are_decoded_only_for_formats_that_show_them(client, wav_bytes, fake_engine, fields, timestamps):
    response = post(client, wav_bytes, **fields)
    assert response.status_code == 200
    response.get_data()
    assert fake_engine.calls[0].timestamps is timestamps


def test_parameters_reach_the_engine(client, wav_bytes, fake_engine):
    response = post(
        client,
        wav_bytes,
        language="DE",
        prompt="Kenobi",
        temperature="0.4",
        response_format="verbose_json",
        **{"timestamp_granularities[]": ["word", "segment"]},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["language"] == "english" and len(body["words"]) == 4 and len(body["segments"]) == 2
    options = fake_engine.calls[0]
    assert (options.language, options.prompt, options.temperature, options.word_timestamps) == (
        "de",
        "Kenobi",
        0.4,
        True,
    )


@pytest.mark.parametrize(
    "fmt, mimetype, start",
    [
        ("text", "text/plain", "Hello there."),
        ("srt", "application/x-subrip", "1\n00:00:00,000 --> 00:00:01,500\nHello there."),
        ("vtt", "text/vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:01.500"),
    ],
)
def test_plain_formats(client, wav_bytes, fmt, mimetype, start):
    response = post(client, wav_bytes, response_format=fmt)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.get_data(as_text=True).startswith(start)


def test_translation_sets_the_task_and_ignores_language(client, wav_bytes, fake_engine):
    response = client.post(
        "/v1/audio/translations",
        content_type="multipart/form-data",
        data={
            "model": "whisper-1",
            "file": (io.BytesIO(wav_bytes), "a.wav"),
            "language": "xx",
            "response_format": "verbose_json",
        },
    )
    assert response.status_code == 200
    assert response.get_json()["task"] == "translate"
    assert fake_engine.calls[0].task == "translate" and fake_engine.calls[0].language is None


@pytest.mark.parametrize(
    "fields, status, param",
    [
        ({"model": ""}, 400, "model"),
        ({"model": "gpt-4o-transcribe-diarize"}, 404, "model"),
        ({"response_format": "xml"}, 400, "response_format"),
        ({"response_format": "diarized_json"}, 400, "response_format"),
        ({"temperature": "hot"}, 400, "temperature"),
        ({"temperature": "1.5"}, 400, "temperature"),
        ({"temperature": "-0.1"}, 400, "temperature"),
        ({"language": "klingon"}, 400, "language"),
        ({"timestamp_granularities[]": "word"}, 400, "timestamp_granularities"),
        ({"timestamp_granularities[]": "sentence", "response_format": "verbose_json"}, 400, "timestamp_granularities"),
        ({"stream": "maybe"}, 400, "stream"),
        ({"stream": "true", "response_format": "srt"}, 400, "stream"),
    ],
)
def test_bad_parameters_get_400_or_404(client, wav_bytes, fake_engine, fields, status, param):
    assert_envelope(post(client, wav_bytes, **fields), status, param)
    assert fake_engine.calls == []


def test_english_only_model_refuses_other_languages(wav_bytes):
    client = make_app(FakeEngine(multilingual=False)).test_client()
    error = assert_envelope(post(client, wav_bytes, language="fr"), 400, "language")
    assert "English-only" in error["message"]
    assert post(client, wav_bytes, language="en").status_code == 200


def test_missing_file_wrong_field_and_non_multipart(client, wav_bytes):
    assert_envelope(post(client, None), 400, "file", "missing_required_parameter")
    wrong = client.post(
        URL, content_type="multipart/form-data", data={"model": "whisper-1", "audio": (io.BytesIO(wav_bytes), "a.wav")}
    )
    assert_envelope(wrong, 400, "file")
    assert_envelope(client.post(URL, json={"model": "whisper-1", "file": "x"}), 400, "file", "invalid_content_type")
    assert_envelope(client.post(URL, data=b"\x00" * 100, content_type="application/octet-stream"), 400, "file")


@pytest.mark.parametrize(
    "audio, code",
    [
        (b"", "empty_file"),
        (os.urandom(4096), "invalid_audio"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"not audio at all, just text\n" * 20, "invalid_audio"),
    ],
)
def test_undecodable_audio_gets_400(client, fake_engine, audio, code):
    assert_envelope(post(client, audio), 400, "file", code)
    assert fake_engine.calls == []


def test_oversized_upload_gets_413(wav_bytes):
    client = make_app(max_upload_mb=0.01).test_client()  # about 10 KiB
    error = assert_envelope(post(client, b"\x00" * 50_000), 413, "file", "file_too_large")
    assert "0.01 MiB" in error["message"]
    # Just under the limit the request is judged on its content, not its size.
    assert post(client, b"\x00" * 10_000).status_code == 400


def test_auth(wav_bytes):
    client = make_app(api_key="s3cret").test_client()
    assert_envelope(post(client, wav_bytes), 401, code="missing_api_key")
    wrong = client.post(
        URL,
        headers={"Authorization": "Bearer nope"},
        content_type="multipart/form-data",
        data={"model": "whisper-1", "file": (io.BytesIO(wav_bytes), "a.wav")},
    )
    assert_envelope(wrong, 401, code="invalid_api_key")
    basic = client.get("/v1/models", headers={"Authorization": "Basic s3cret"})
    assert_envelope(basic, 401, code="invalid_api_key")
    right = client.post(
        URL,
        headers={"Authorization": "Bearer s3cret"},
        content_type="multipart/form-data",
        data={"model": "whisper-1", "file": (io.BytesIO(wav_bytes), "a.wav")},
    )
    assert right.status_code == 200
    assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # A probe needs no key to learn the status; the figures need it (test_security.py has the rest).
    assert client.get("/health").get_json() == {"status": "ready"}
    assert_envelope(client.get("/metrics"), 401, code="missing_api_key")
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_models(client):
    listing = client.get("/v1/models").get_json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == [*OPENAI_MODEL_NAMES, "tiny.en"]
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in listing["data"])
    assert client.get("/v1/models/tiny.en").get_json()["id"] == "tiny.en"
    assert_envelope(client.get("/v1/models/whisper-9"), 404, "model", "model_not_found")


@pytest.mark.parametrize("name", OPENAI_MODEL_NAMES)
def test_openai_model_names_answer_by_default(client, wav_bytes, fake_engine, name):
    # OpenClaw's voice-note path and its bundled skill send gpt-4o-transcribe unless told otherwise.
    response = post(client, wav_bytes, model=name)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert client.get(f"/v1/models/{name}").status_code == 200


def test_newer_openai_fields_are_accepted_and_ignored(client, wav_bytes, fake_engine):
    response = client.post(
        URL,
        content_type="multipart/form-data",
        data={
            "model": "gpt-4o-transcribe",
            "chunking_strategy": "auto",
            "include[]": "logprobs",
            "file": (io.BytesIO(wav_bytes), "a.wav"),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["text"]


def test_diarized_json_is_refused_clearly(client, wav_bytes, fake_engine):
    error = assert_envelope(post(client, wav_bytes, response_format="diarized_json"), 400, "response_format")
    assert "diarization" in error["message"] and "json" in error["message"]
    assert fake_engine.calls == []


def test_narrowed_names_refuse_the_others(wav_bytes):
    client = make_app(model_aliases=("whisper-1",)).test_client()
    assert_envelope(post(client, wav_bytes, model="gpt-4o-transcribe"), 404, "model", "model_not_found")
    assert [m["id"] for m in client.get("/v1/models").get_json()["data"]] == ["whisper-1", "tiny.en"]


def test_aliases_map_to_the_loaded_model(wav_bytes):
    client = make_app(model_aliases=("whisper-1", "gpt-4o-mini-transcribe")).test_client()
    assert post(client, wav_bytes, model="gpt-4o-mini-transcribe").status_code == 200
    ids = [m["id"] for m in client.get("/v1/models").get_json()["data"]]
    assert ids == ["whisper-1", "gpt-4o-mini-transcribe", "tiny.en"]


def test_unknown_route_and_method_get_envelopes(client):
    assert_envelope(client.get("/v1/nothing"), 404)
    assert_envelope(client.get(URL), 405)


def test_huge_header_gets_431(client):
    assert_envelope(client.get("/v1/models", headers={"X-Junk": "a" * 100_000}), 431, code="headers_too_large")


def test_request_id_is_honoured_or_made(client):
    given = client.get("/v1/models", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    unsafe = client.get("/v1/models", headers={"X-Request-ID": "bad id\x7f"})
    assert len(unsafe.headers["X-Request-ID"]) == 32


def test_request_id_with_a_trailing_newline_is_replaced(client):
    forged = client.get("/v1/models", environ_overrides={"HTTP_X_REQUEST_ID": "abc\n"})
    assert len(forged.headers["X-Request-ID"]) == 32


def test_nothing_a_client_sends_forges_a_log_line(client, caplog):
    caplog.set_level("INFO", logger="whisper_server.access")
    client.get("/x%0Arequest_id=forged status=200%0D%20").close()
    client.open("/v1/models%0a", method="GET").close()
    records = [r.getMessage() for r in caplog.records if r.name == "whisper_server.access"]
    assert len(records) == 2
    for line in records:
        assert "\n" not in line and "\r" not in line
        assert line.count("request_id=") == 1 and line.count("status=") == 1
    assert "path=/x%0Arequest_id%3Dforged%20status%3D200%0D%20 " in records[0]


def test_engine_fault_is_a_logged_500_envelope(wav_bytes, caplog):
    client = make_app(FakeEngine(fail=RuntimeError("boom"))).test_client()
    response = client.post(
        URL,
        headers={"X-Request-ID": "fault-1"},
        content_type="multipart/form-data",
        data={"model": "whisper-1", "file": (io.BytesIO(wav_bytes), "a.wav")},
    )
    error = assert_envelope(response, 500, code="server_error")
    assert error["type"] == "server_error"
    assert "fault-1" in error["message"]
    assert any("fault-1" in r.getMessage() and r.exc_info for r in caplog.records)


def test_not_ready_answers_503():
    app = create_app(Config(model="tiny.en"))
    client = app.test_client()
    health = client.get("/health")
    assert health.status_code == 503 and health.get_json()["status"] == "loading"
    assert_envelope(post(client, b"x"), 503, code="model_loading")
    get_state(app).set_loaded(LoadedEngine(FakeEngine(), "cpu", "int8", warnings=["slow disk"]))
    health = client.get("/health").get_json()
    assert health["status"] == "ready"
    assert (health["device"], health["compute_type"], health["warnings"]) == ("cpu", "int8", ["slow disk"])
    assert {"model", "gpu", "uptime_s", "queue_depth", "workers", "batch_size", "streams"} <= set(health)


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_full_queue_answers_429_with_retry_after(wav_bytes):
    gate = threading.Event()
    app = make_app(FakeEngine(gate=gate), workers=1, max_queue=1)
    admission = get_state(app).admission
    results = []

    def call():
        results.append(post(app.test_client(), wav_bytes).status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: admission.running == 1 and admission.waiting == 1)
    assert app.test_client().get("/health").get_json()["queue_depth"] == 1
    refused = post(app.test_client(), wav_bytes)
    error = assert_envelope(refused, 429, code="queue_full")
    assert error["type"] == "rate_limit_error"
    assert int(refused.headers["Retry-After"]) >= 1
    gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [200, 200]
    assert admission.running == 0 and admission.waiting == 0
    # The slot is free again.
    assert post(app.test_client(), wav_bytes).status_code == 200


def test_bad_audio_gives_its_ticket_back(wav_bytes):
    app = make_app(workers=1, max_queue=0)
    client = app.test_client()
    for _ in range(3):
        assert post(client, b"garbage" * 10).status_code == 400
    assert post(client, wav_bytes).status_code == 200


def _events(response):
    """The data events; SSE comments (": ...") are keep-alives and skipped."""
    text = response.get_data(as_text=True)
    chunks = text.strip().split("\n\n")
    return [json.loads(chunk[len("data: ") :]) for chunk in chunks if not chunk.startswith(":")]


def test_streaming_events(client, wav_bytes):
    response = post(client, wav_bytes, stream="true")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = _events(response)
    assert [e["type"] for e in events] == ["transcript.text.delta", "transcript.text.delta", "transcript.text.done"]
    assert events[0]["delta"] == "Hello there."
    assert "".join(e["delta"] for e in events[:2]) == events[2]["text"] == "Hello there. General Kenobi."
    # Each event is what the official client's types accept; usage, typed in tokens there, is left out.
    for event in events[:2]:
        TranscriptionTextDeltaEvent.model_validate(event, strict=True)
    TranscriptionTextDoneEvent.model_validate(events[2], strict=True)
    assert "usage" not in events[2]


def test_a_stream_is_accepted_at_once_even_while_queued(wav_bytes):
    """The headers and a first SSE comment go out before the request gets a worker."""
    app = make_app(workers=1, max_queue=1)
    admission = get_state(app).admission
    with admission.ticket() as busy, busy.run():  # the only worker is taken
        response = post(app.test_client(), wav_bytes, stream="true")
        assert response.status_code == 200
        first = next(iter(response.response))
        assert (first if isinstance(first, str) else first.decode()).startswith(":")
        assert admission.waiting == 1
    events = _events(response)
    assert events[-1]["type"] == "transcript.text.done"
    response.close()
    assert admission.waiting == 0 and admission.running == 0


def test_streaming_fault_is_an_error_event_and_frees_the_slot(wav_bytes):
    app = make_app(FakeEngine(fail=RuntimeError("boom")), workers=1, max_queue=0)
    events = _events(post(app.test_client(), wav_bytes, stream="true"))
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "server_error"
    admission = get_state(app).admission
    assert admission.running == 0 and admission.waiting == 0


def test_metrics_count_requests_and_audio(client, wav_bytes):
    # The request log and the counters are written when the server closes the response.
    post(client, wav_bytes).close()
    post(client, wav_bytes, model="nope").close()
    text = client.get("/metrics").get_data(as_text=True)
    assert 'whisper_requests_total{endpoint="/v1/audio/transcriptions",status="200"} 1.0' in text
    assert 'whisper_requests_total{endpoint="/v1/audio/transcriptions",status="404"} 1.0' in text
    assert "whisper_audio_seconds_total 1.0" in text
    assert "whisper_realtime_factor_count 1.0" in text
    assert "whisper_queue_depth 0.0" in text
    assert "whisper_request_duration_seconds_count" in text


def test_large_uploads_stay_in_memory():
    from werkzeug import Request
    from werkzeug.test import EnvironBuilder

    from whisper_server.app import InMemoryRequest

    def file_stream(request_class):
        builder = EnvironBuilder(method="POST", data={"file": (io.BytesIO(b"x" * 2_000_000), "big.wav")})
        return request_class(builder.get_environ()).files["file"].stream

    assert isinstance(file_stream(InMemoryRequest), io.BytesIO)
    # Stock Werkzeug would have rolled this part over into a temporary file on disk.
    spooled = file_stream(Request)
    assert not isinstance(spooled, io.BytesIO) and getattr(spooled, "_rolled", True)


def test_draining_refuses_new_work_with_503_and_health_says_so(client, wav_bytes, fake_engine):
    state = get_state(client.application)
    assert state.drain(0.0) is True  # nothing in flight
    error = assert_envelope(post(client, wav_bytes), 503, code="shutting_down")
    assert "shutting down" in error["message"]
    response = post(client, wav_bytes)
    assert response.headers["Retry-After"] == "5"
    health = client.get("/health")
    assert health.status_code == 503 and health.get_json()["status"] == "shutting_down"
    assert fake_engine.calls == []


def test_inflight_counts_every_request_until_it_is_sent(client, wav_bytes):
    state = get_state(client.application)
    post(client, wav_bytes).close()
    client.get("/v1/models").close()
    client.get("/nowhere").close()
    stream = post(client, wav_bytes, stream="true")
    assert state.inflight == 1  # the stream is not sent yet
    assert state.drain(0.1) is False
    stream.get_data()
    stream.close()
    assert state.inflight == 0 and state.drain(0.0) is True
