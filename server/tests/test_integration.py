"""The real server (whisper-server command, tiny.en, waitress) over real HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from typing import Optional

import numpy as np
import openai
import pytest
import requests

import support
from conftest import start_server

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


def test_sigterm_lets_the_running_request_finish_then_exits_0(tmp_path):
    """What `systemctl --user restart` does to a request in flight: it completes; new ones get 503."""
    running = start_server(tmp_path, support.tiny_en(), "--shutdown-grace", "60", key=None)
    long_note = support.encode(support.speak(" ".join(support.SENTENCES.values()) * 3), "ogg")
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=running.post(audio=long_note, filename="l.ogg")))
    try:
        worker.start()
        deadline = time.monotonic() + 30
        while requests.get(running.url + "/health", timeout=5).json()["running"] == 0:
            assert time.monotonic() < deadline, "the long request never started"
            time.sleep(0.05)
        running.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        refused = running.post(audio=support.speech("fox", "ogg"), filename="f.ogg")
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
        assert refused.headers["Retry-After"]
        worker.join(timeout=120)
        assert result["r"].status_code == 200, result["r"].text
        assert "weather" in result["r"].json()["text"].lower()
        assert running.process.wait(timeout=30) == 0
    finally:
        running.stop()
    assert "shutting down" in running.output.read_text()


def test_batched_without_vad_takes_clips_over_30_seconds(tmp_path):
    batched = start_server(tmp_path, support.tiny_en(), "--batch-size", "4", "--no-vad", key=None)
    speech = support.speak(support.SENTENCES["report"])
    clip = np.concatenate([speech, np.zeros(16000 * 36 - speech.size, dtype=np.float32)])
    try:
        response = batched.post(audio=support.encode(clip, "ogg"), filename="long.ogg")
    finally:
        batched.stop()
    assert response.status_code == 200, response.text
    assert support.wer(support.SENTENCES["report"], response.json()["text"]) <= MAX_WER


def test_a_client_that_leaves_stops_its_work(tmp_path):
    """Over real HTTP: a running request and a queued one whose clients give up are stopped and
    logged 499; the worker is free again for the next client."""
    busy = start_server(tmp_path, support.tiny_en(), "--workers", "1", "--max-queue", "2", key=None)
    long_note = support.encode(support.speak(" ".join(support.SENTENCES.values()) * 4), "ogg")

    def give_up_after(seconds: float) -> None:
        with pytest.raises(requests.exceptions.Timeout):
            busy.post(audio=long_note, filename="long.ogg", timeout=seconds)

    try:
        running = threading.Thread(target=give_up_after, args=(1.5,))
        running.start()
        time.sleep(0.5)
        queued = threading.Thread(target=give_up_after, args=(1.0,))
        queued.start()
        running.join()
        queued.join()
        deadline = time.monotonic() + 30
        while True:
            health = requests.get(busy.url + "/health", timeout=5).json()
            if health["running"] == 0 and health["queue_depth"] == 0:
                break
            assert time.monotonic() < deadline, f"abandoned work still going: {health}"
            time.sleep(0.2)
        metrics = requests.get(busy.url + "/metrics", timeout=5).text
        assert 'whisper_cancelled_total{stage="running"} 1.0' in metrics
        assert 'whisper_cancelled_total{stage="queued"} 1.0' in metrics
        assert busy.post(audio=support.speech("fox", "ogg"), filename="f.ogg").status_code == 200
    finally:
        busy.stop()
    log = (busy.log_dir / "whisper-server.log").read_text()
    assert log.count("status=499") == 2


def test_oversized_upload_is_refused_with_413(tmp_path):
    small = start_server(tmp_path, support.tiny_en(), "--max-upload-mb", "1", key=None)
    try:
        response = small.post(audio=b"\x00" * (1536 * 1024))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "file_too_large"
        assert small.post(audio=support.speech("fox")).status_code == 200
    finally:
        small.stop()


def test_concurrent_requests_end_in_200_or_429(tmp_path):
    busy = start_server(tmp_path, support.tiny_en(), "--workers", "1", "--max-queue", "1", key=None)
    audio = support.speech("weather", "ogg")
    results: list[requests.Response] = []
    lock = threading.Lock()

    def call():
        response = busy.post(audio=audio, filename="n.ogg")
        with lock:
            results.append(response)

    try:
        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        statuses = sorted(r.status_code for r in results)
        assert len(statuses) == 8
        assert set(statuses) <= {200, 429}, statuses
        assert statuses.count(200) >= 2 and statuses.count(429) >= 1, statuses
        for response in results:
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
                assert response.json()["error"]["code"] == "queue_full"
            else:
                assert support.wer(support.SENTENCES["weather"], response.json()["text"]) <= MAX_WER
        assert requests.get(busy.url + "/health", timeout=5).json()["queue_depth"] == 0
    finally:
        busy.stop()


def _model_calls(url: str, headers: Optional[dict] = None) -> dict[int, float]:
    """whisper_model_calls_total from /metrics: model calls by the number of windows each decoded."""
    text = requests.get(url + "/metrics", headers=headers, timeout=5).text
    return {
        int(w): float(n) for w, n in re.findall(r'^whisper_model_calls_total\{windows="(\d+)"\} (\S+)$', text, re.M)
    }


def test_concurrent_requests_share_model_calls_and_each_gets_its_own_result(tmp_path):
    """Cross-request batching with the real model: one model stream, so concurrent windows can only
    be decoded together. Each request keeps its own options and gets its own transcript."""
    busy = start_server(tmp_path, support.tiny_en(), "--streams", "1", "--workers", "8", key=None)
    cases = [
        ("fox", {"model": "whisper-1"}),
        (
            "report",
            {"model": "whisper-1", "response_format": "verbose_json", "timestamp_granularities[]": ["segment", "word"]},
        ),
        ("weather", {"model": "whisper-1", "response_format": "text"}),
        ("fox", {"model": "whisper-1", "prompt": "Fox, dog."}),
        ("report", {"model": "whisper-1", "temperature": "0.3"}),
        ("weather", {"model": "whisper-1", "response_format": "srt"}),
    ]
    results: dict[int, requests.Response] = {}
    try:
        before = _model_calls(busy.url)
        threads = [
            threading.Thread(
                target=lambda i=i, key=key, data=data: results.__setitem__(
                    i, busy.post(audio=support.speech(key, "ogg"), filename="n.ogg", data=data)
                )
            )
            for i, (key, data) in enumerate(cases)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        after = _model_calls(busy.url)
    finally:
        busy.stop()
    for i, (key, data) in enumerate(cases):
        response = results[i]
        assert response.status_code == 200, response.text
        fmt = data.get("response_format", "json")
        if fmt == "verbose_json":
            body = response.json()
            text = body["text"]
            assert body["words"] and body["segments"]
        elif fmt == "srt":
            text = " ".join(
                line for line in response.text.splitlines() if line and "-->" not in line and not line.isdigit()
            )
        elif fmt == "text":
            text = response.text
        else:
            text = response.json()["text"]
        assert support.wer(support.SENTENCES[key], text) <= MAX_WER, (key, text)
    batched = {w: n - before.get(w, 0) for w, n in after.items() if w > 1 and n > before.get(w, 0)}
    assert batched, f"no model call decoded more than one window: {after}"


def test_long_audio_is_decoded_in_batched_chunks_with_coherent_times(server):
    """Past one window, VAD-cut chunks go through the model as a batch; segments, words and the
    stream stay right."""
    sentences = support.PARAGRAPH
    pause = np.zeros(16000 * 2, dtype=np.float32)
    clip = np.concatenate([part for s in sentences for part in (support.speak(s), pause)])
    duration = clip.size / 16000
    assert duration > 45
    audio = support.encode(clip, "ogg")
    before = _model_calls(server.url, server.headers)
    response = server.post(
        audio=audio,
        filename="long.ogg",
        data={
            "model": "whisper-1",
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["segment", "word"],
        },
    )
    after = _model_calls(server.url, server.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert support.wer(" ".join(sentences), body["text"]) <= MAX_WER
    assert abs(body["duration"] - duration) < 0.1
    segments, words = body["segments"], body["words"]
    assert len(segments) >= len(sentences) // 2
    for previous, segment in zip(segments, segments[1:]):
        assert previous["end"] <= segment["start"] + 0.05 and segment["id"] == previous["id"] + 1
    assert all(0 <= s["start"] < s["end"] <= duration + 0.5 for s in segments)
    assert segments[-1]["start"] > duration - 15  # the last sentence is found where it is, not squeezed early
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and words[-1]["end"] <= duration + 0.5
    assert support.wer(" ".join(sentences), " ".join(w["word"] for w in words)) <= MAX_WER
    grew = {w for w, n in after.items() if w > 1 and n > before.get(w, 0)}
    assert grew, f"the chunks were not decoded as a batch: {before} -> {after}"
    streamed = server.post(audio=audio, filename="long.ogg", data={"model": "whisper-1", "stream": "true"}, stream=True)
    events = [json.loads(x[6:]) for x in streamed.iter_lines(decode_unicode=True) if x.startswith("data: ")]
    assert events[-1]["type"] == "transcript.text.done" and len(events) >= 4
    assert support.wer(body["text"], events[-1]["text"]) <= 0.05
