"""The real server (whisper-server command, tiny.en, waitress) over real HTTP: shutdown, departing clients,
limits, concurrent requests and the model calls they share, long audio in batched chunks. Most tests
start a server of their own, with the settings they need."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
from typing import Callable, Optional

import numpy as np
import pytest
import requests

from conftest import start_server
from whisperlab_testkit import support

pytestmark = pytest.mark.model


MAX_WER = 0.3  # tiny.en on espeak-ng's voice; real misses are whole sentences, not one word


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
    batched = start_server(
        tmp_path, support.tiny_en(), "--batch-size", "4", "--sequential-seconds", "30", "--no-vad", key=None
    )
    speech = support.speak(support.SENTENCES["report"])
    clip = np.concatenate([speech, np.zeros(16000 * 36 - speech.size, dtype=np.float32)])
    try:
        response = batched.post(audio=support.encode(clip, "ogg"), filename="long.ogg")
    finally:
        batched.stop()
    assert response.status_code == 200, response.text
    assert support.wer(support.SENTENCES["report"], response.json()["text"]) <= MAX_WER


def _send_and_hold(url: str, note: bytes) -> socket.socket:
    """Sends a whole transcription request on a socket of its own and returns the socket unread: the
    client "leaves" when the test closes it, at a moment the test chooses."""
    prepared = requests.Request(
        "POST", url + "/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"file": ("long.ogg", note)}
    ).prepare()
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in prepared.headers.items()) + "\r\n"
    sock.sendall(head.encode("latin-1") + prepared.body)
    return sock


def _wait_for(what: str, ready: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, f"not seen in {seconds} s: {what}"
        time.sleep(0.1)


def test_a_client_that_leaves_stops_its_work(tmp_path):
    """Over real HTTP: a running request and a queued one whose clients leave are stopped and logged
    499, each counted at the stage it was in; the worker is free again for the next client. The
    clients leave in an order the server's own /health confirms, so a busy machine cannot swap the
    stages (two timeouts racing once did)."""
    busy = start_server(tmp_path, support.tiny_en(), "--workers", "1", "--max-queue", "2", key=None)
    long_note = support.encode(support.speak(" ".join(support.SENTENCES.values()) * 4), "ogg")

    def health() -> dict:
        return requests.get(busy.url + "/health", timeout=5).json()

    def cancelled(stage: str) -> bool:
        return f'whisper_cancelled_total{{stage="{stage}"}} 1.0' in requests.get(busy.url + "/metrics", timeout=5).text

    try:
        running = _send_and_hold(busy.url, long_note)
        _wait_for("the first request running", lambda: health()["running"] == 1)
        queued = _send_and_hold(busy.url, long_note)
        _wait_for("the second request queued", lambda: health()["queue_depth"] == 1)
        queued.close()
        _wait_for("the queued request stopped", lambda: cancelled("queued"))
        assert health()["running"] == 1, "the first request ended before its client left; use a longer note"
        running.close()
        _wait_for("the running request stopped", lambda: cancelled("running"), seconds=30)
        _wait_for("the worker free", lambda: health()["running"] == 0 and health()["queue_depth"] == 0)
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


@pytest.fixture(scope="module")
def chunking_server(tmp_path_factory):
    """A server that decodes audio past one window in chunks side by side, as a GPU does by default."""
    running = start_server(tmp_path_factory.mktemp("chunks"), support.tiny_en(), "--sequential-seconds", "30")
    yield running
    running.stop()


@pytest.mark.parametrize("side_by_side", [False, True], ids=["window-after-window", "chunks"])
def test_long_audio_is_decoded_with_coherent_times(request, side_by_side):
    """Past one window, either way (on a CPU up to 120 s window after window, past it in VAD-cut chunks
    through the model as a batch): segments, words and the stream stay right."""
    server = request.getfixturevalue("chunking_server" if side_by_side else "server")
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
    assert bool(grew) is side_by_side, f"chunks side by side are one batch, windows in order are not: {after}"
    streamed = server.post(audio=audio, filename="long.ogg", data={"model": "whisper-1", "stream": "true"}, stream=True)
    events = [json.loads(x[6:]) for x in streamed.iter_lines(decode_unicode=True) if x.startswith("data: ")]
    assert events[-1]["type"] == "transcript.text.done" and len(events) >= 4
    assert support.wer(body["text"], events[-1]["text"]) <= 0.05
