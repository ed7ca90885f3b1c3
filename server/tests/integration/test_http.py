"""The real server (whisper-server command, tiny.en, waitress) over real HTTP: voice-note formats, the
official client, the key and the request log, /health and /metrics, malformed input."""

from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import openai
import pytest
import requests

from whisperlab_testkit import support

pytestmark = pytest.mark.model


MAX_WER = 0.3  # tiny.en on espeak-ng's voice; real misses are whole sentences, not one word


@pytest.fixture(scope="module")
def report_wav():
    return support.speech("report", "wav")


@pytest.mark.parametrize("fmt", sorted(support.FORMATS))
def test_voice_note_formats_transcribe(server, fmt):
    response = server.post(audio=support.speech("report", fmt), filename=f"note.{fmt}")
    assert response.status_code == 200, response.text
    assert support.wer(support.SENTENCES["report"], response.json()["text"]) <= MAX_WER


def test_text_srt_vtt(server, report_wav):
    text = server.post(data={"model": "whisper-1", "response_format": "text"}, audio=report_wav)
    assert text.headers["Content-Type"].startswith("text/plain")
    assert support.wer(support.SENTENCES["report"], text.text) <= MAX_WER
    srt = server.post(data={"model": "whisper-1", "response_format": "srt"}, audio=report_wav).text
    cues = srt.strip().split("\n\n")
    assert re.fullmatch(r"1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n.+", cues[0])
    vtt = server.post(data={"model": "whisper-1", "response_format": "vtt"}, audio=report_wav).text
    assert vtt.startswith("WEBVTT\n\n")
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}$", vtt, re.M)


def test_verbose_json_with_words(server, report_wav):
    response = server.post(
        audio=report_wav,
        data={"model": "tiny.en", "response_format": "verbose_json", "timestamp_granularities[]": ["segment", "word"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    duration = len(support.speak(support.SENTENCES["report"])) / 16000
    assert body["task"] == "transcribe" and body["language"] == "english"
    assert abs(body["duration"] - duration) < 0.05
    for segment in body["segments"]:
        assert support.OPENAI_SEGMENT_FIELDS <= set(segment)
        assert 0 <= segment["start"] < segment["end"] <= duration + 0.5
        assert segment["tokens"] and all(isinstance(t, int) for t in segment["tokens"])
    words = body["words"]
    assert len(words) >= 8
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and all(w["end"] >= w["start"] for w in words)
    assert support.wer(support.SENTENCES["report"], " ".join(w["word"] for w in words)) <= MAX_WER


def test_streaming_sends_deltas_then_done(server):
    audio = support.encode(
        np.concatenate([support.speak(support.SENTENCES["fox"]), support.speak(support.SENTENCES["weather"])]), "ogg"
    )
    response = server.post(audio=audio, filename="note.ogg", data={"model": "whisper-1", "stream": "true"}, stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = [
        json.loads(line[len("data: ") :])
        for line in response.iter_lines(decode_unicode=True)
        if line.startswith("data: ")
    ]
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) == {"transcript.text.delta"}
    assert len(kinds) >= 3  # two sentences decode as at least two segments
    assert "".join(e["delta"] for e in events[:-1]).strip() == events[-1]["text"]
    expected = support.SENTENCES["fox"] + " " + support.SENTENCES["weather"]
    assert support.wer(expected, events[-1]["text"]) <= MAX_WER


def test_official_openai_client(server, report_wav):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0)
    result = client.audio.transcriptions.create(model="whisper-1", file=("note.wav", report_wav))
    assert support.wer(support.SENTENCES["report"], result.text) <= MAX_WER
    text = client.audio.transcriptions.create(model="whisper-1", file=("note.wav", report_wav), response_format="text")
    assert support.wer(support.SENTENCES["report"], text) <= MAX_WER
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=("note.wav", report_wav),
        response_format="verbose_json",
        timestamp_granularities=["word"],
        language="en",
        prompt="Quarterly report.",
        temperature=0.0,
    )
    assert verbose.language == "english" and verbose.words and verbose.duration > 3
    translated = client.audio.translations.create(model="whisper-1", file=("note.wav", report_wav))
    assert support.wer(support.SENTENCES["report"], translated.text) <= MAX_WER
    assert "whisper-1" in [m.id for m in client.models.list()]
    # OpenClaw's default model, with the fields a newer client adds.
    newer = client.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("note.wav", report_wav), chunking_strategy="auto", include=["logprobs"]
    )
    assert support.wer(support.SENTENCES["report"], newer.text) <= MAX_WER
    assert {"gpt-4o-transcribe", "gpt-4o-mini-transcribe"} <= {m.id for m in client.models.list()}
    with pytest.raises(openai.BadRequestError, match="diariz"):
        client.audio.transcriptions.create(
            model="gpt-4o-transcribe", file=("note.wav", report_wav), response_format="diarized_json"
        )
    assert client.models.retrieve("tiny.en").id == "tiny.en"
    with pytest.raises(openai.NotFoundError):
        client.audio.transcriptions.create(model="whisper-9", file=("note.wav", report_wav))
    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(model="whisper-1", file=("note.wav", b"\x00junk" * 100))
    wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def log_with(log_dir, *needles: str, timeout: float = 5.0) -> str:
    """The request log once it holds every needle: a request's line is written when waitress closes
    the response, which can be just after the client has read all of it."""
    deadline = time.monotonic() + timeout
    while True:
        log = (log_dir / "whisper-server.log").read_text()
        if all(needle in log for needle in needles) or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def test_key_is_required_and_the_log_records_the_request(server, report_wav):
    unauthenticated = requests.post(
        server.url + "/v1/audio/transcriptions",
        data={"model": "whisper-1"},
        files={"file": ("n.wav", report_wav)},
        headers={"X-Request-ID": "no-key-1"},
        timeout=30,
    )
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "missing_api_key"
    ok = server.post(audio=report_wav, headers={"X-Request-ID": "integration-42"})
    assert ok.headers["X-Request-ID"] == "integration-42"
    log = log_with(server.log_dir, "request_id=no-key-1 ", "request_id=integration-42 ")
    assert re.search(r"request_id=no-key-1 .*status=401", log)
    line = next(line for line in log.splitlines() if "request_id=integration-42" in line)
    assert re.search(r"status=200 audio_s=\d+\.\d+ proc_s=\d+\.\d+ rtf=\d+\.\d+ language=en", line)
    assert server.key not in log and server.key not in server.output.read_text()


def test_health_and_metrics(server, report_wav):
    server.post(audio=report_wav)
    assert requests.get(server.url + "/health", timeout=5).json() == {"status": "ready"}  # no key, no details
    assert requests.get(server.url + "/metrics", timeout=5).status_code == 401
    health = requests.get(server.url + "/health", headers=server.headers, timeout=5).json()
    assert health["status"] == "ready" and health["device"] == "cpu" and health["compute_type"] == "int8"
    assert health["model"] == str(support.tiny_en()) and health["gpu"] is None
    metrics = requests.get(server.url + "/metrics", headers=server.headers, timeout=5).text
    audio_seconds = float(re.search(r"^whisper_audio_seconds_total (\S+)$", metrics, re.M).group(1))
    assert audio_seconds > 3
    assert re.search(
        r'^whisper_requests_total\{endpoint="/v1/audio/transcriptions",status="200"\} [1-9]', metrics, re.M
    )
    assert "whisper_realtime_factor_bucket" in metrics and "whisper_queue_depth" in metrics


def test_malformed_corpus_gets_4xx_envelopes_and_the_server_stays_healthy(server):
    ogg = support.speech("fox", "ogg")
    raw = requests.Request(
        "POST", server.url + "/v1/audio/transcriptions", headers=server.headers, data=b"\x00" * 1000
    ).prepare()
    raw.headers["Content-Type"] = "application/octet-stream"
    cases = {
        "random bytes": lambda: server.post(audio=os.urandom(20_000)),
        "truncated ogg (headers only)": lambda: server.post(audio=ogg[:120], filename="n.ogg"),
        "zero-length file": lambda: server.post(audio=b""),
        "wrong field name": lambda: requests.post(
            server.url + "/v1/audio/transcriptions",
            headers=server.headers,
            data={"model": "whisper-1"},
            files={"audio": ("n.ogg", ogg)},
            timeout=30,
        ),
        "non-multipart body": lambda: requests.Session().send(raw, timeout=30),
        "huge header": lambda: server.post(audio=ogg, headers={"X-Padding": "p" * 200_000}),
        "unknown model": lambda: server.post(audio=ogg, data={"model": "large-v9"}),
        "bad response_format": lambda: server.post(audio=ogg, data={"model": "whisper-1", "response_format": "doc"}),
    }
    for name, send in cases.items():
        response = send()
        assert 400 <= response.status_code < 500, f"{name}: {response.status_code} {response.text[:200]}"
        error = response.json()["error"]
        assert error["message"] and error["type"], name
    # Cut mid-stream, an OGG still holds some speech: partial text or a 400, never a fault.
    assert server.post(audio=ogg[: len(ogg) // 2], filename="n.ogg").status_code in (200, 400)
    assert requests.get(server.url + "/health", timeout=5).json()["status"] == "ready"
    assert support.wer(support.SENTENCES["fox"], server.post(audio=ogg).json()["text"]) <= MAX_WER


def test_a_forged_path_writes_one_log_line(server):
    # No key needed: it is a 404. %0A would otherwise start a log line of the client's choosing.
    response = requests.get(server.url + "/x%0Arequest_id=forged%20status=200", timeout=10)
    assert response.status_code == 404
    log = log_with(server.log_dir, "path=/x%0Arequest_id%3Dforged").splitlines()
    assert not [line for line in log if line.startswith("request_id=forged") or " request_id=forged" in line]
    assert [line for line in log if "path=/x%0Arequest_id%3Dforged" in line]
