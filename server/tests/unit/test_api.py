"""The transcription and translation endpoints and /v1/models on a fake engine: parameters, validation,
formats, model names, streaming."""

from __future__ import annotations

import io
import json
import os

import pytest
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent

from conftest import URL, FakeEngine, assert_envelope, make_app, post
from whisper_server.config import OPENAI_MODEL_NAMES
from whisper_server.state import get_state


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
