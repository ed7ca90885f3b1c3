"""The Wyoming port with the real tiny.en model, spoken to as Home Assistant speaks it (the `wyoming`
package's own client), beside OpenAI-API requests to the same server; side by side with
wyoming-faster-whisper on the same clips; SIGTERM; and the idle unload giving memory back."""

from __future__ import annotations

import re
import signal
import threading
import time

import av
import numpy as np
import psutil
import pytest
import requests

from whisperlab_testkit import support
from whisperlab_testkit import wyoming_kit as wk

pytestmark = pytest.mark.model

HOST = "127.0.0.1"


def clips() -> dict[str, tuple[str, bytes]]:
    """name: (reference, 16 kHz s16 PCM): espeak's sentences, and real speech where ../shared/data has it."""
    found = {key: (text, wk.pcm(support.speak(text))) for key, text in support.SENTENCES.items()}
    jfk = support.SHARED_DATA / "jfk.flac"
    if jfk.is_file():
        reference = (
            "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for "
            "your country."
        )
        found["jfk"] = (reference, wk.pcm(_decode(jfk)))
    return found


def _decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        parts = [
            out.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for out in resampler.resample(frame)
        ]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def wyoming_server(tmp_path_factory):
    port = support.free_port()
    running = support.start_server(
        tmp_path_factory.mktemp("wyoming"), support.tiny_en(), "--model-alias", "tiny.en", "--wyoming-port", str(port)
    )
    running.wyoming_port = port
    yield running
    running.stop()


def test_home_assistant_and_openai_clients_share_one_server(wyoming_server):
    """Three utterances over Wyoming and the same three over /v1, all at once: every transcript within
    WER 0.2, all through one queue (the metrics count both)."""
    info = wk.describe(HOST, wyoming_server.wyoming_port)
    assert info.asr[0].models[0].name == "tiny.en" and info.asr[0].models[0].languages == ["en"]
    results: dict[tuple[str, str], str] = {}
    errors = []

    def over_wyoming(key, audio):
        try:
            answer = wk.transcribe(HOST, wyoming_server.wyoming_port, audio)
            assert answer.error is None, answer.error
            kinds = [e.type for e in answer.events]
            assert kinds[0] == "transcript-start" and kinds[-2:] == ["transcript-stop", "transcript"]
            assert "".join(e.data["text"] for e in answer.events if e.type == "transcript-chunk") == answer.text
            results[("wyoming", key)] = answer.text
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def over_http(key):
        try:
            response = wyoming_server.post(audio=support.speech(key))
            assert response.status_code == 200, response.text
            results[("http", key)] = response.json()["text"]
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = []
    for key, text in support.SENTENCES.items():
        threads.append(threading.Thread(target=over_wyoming, args=(key, wk.pcm(support.speak(text)))))
        threads.append(threading.Thread(target=over_http, args=(key,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    for (side, key), text in results.items():
        assert support.wer(support.SENTENCES[key], text) <= 0.2, (side, key, text)
    assert len(results) == 6
    metrics = requests.get(wyoming_server.url + "/metrics", headers=wyoming_server.headers, timeout=10).text
    assert 'whisper_requests_total{endpoint="wyoming",status="200"} 3.0' in metrics
    assert support.transcription_metrics(metrics)["ok"] == 3
    lines = [
        line for line in (wyoming_server.log_dir / "whisper-server.log").read_text().splitlines() if "WYOMING" in line
    ]
    assert len(lines) >= 3 and all("status=200" in line for line in lines[:3])


def test_the_wyoming_port_listens_before_health_says_ready(tmp_path):
    """Wyoming listens before HTTP answers at all, so a client that waited for /health finds the port open
    (a race the first CI run of this lost). A describe while the model loads waits for it, and names its
    languages."""
    import subprocess
    import sys

    port, http = support.free_port(), support.free_port()
    args = ["--model", str(support.base()), "--port", str(http), "--wyoming-port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "whisper_server", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        statuses = []
        while time.monotonic() < deadline:
            try:
                statuses.append(requests.get(f"http://{HOST}:{http}/health", timeout=2).status_code)
                break
            except requests.ConnectionError:
                time.sleep(0.02)
        # The first answer from /health comes while the model loads (503), and by then Wyoming listens.
        assert statuses == [503]
        info = wk.describe(HOST, port, timeout=30)
        assert len(info.asr[0].models[0].languages) > 50  # base is multilingual: known once it loaded
        assert requests.get(f"http://{HOST}:{http}/health", timeout=2).status_code == 200
    finally:
        process.terminate()
        process.wait(30)


def test_side_by_side_with_wyoming_faster_whisper(wyoming_server, tmp_path, record_property):
    """The same clips to both, one at a time: whisperlab's transcripts are as good as the peer's (mean WER
    within 0.05 of it). Latencies are recorded, not asserted (make bench-wyoming measures them)."""
    peer = wk.Peer(tmp_path, support.tiny_en())
    try:
        ours, theirs = [], []
        for key, (reference, audio) in clips().items():
            mine = wk.transcribe(HOST, wyoming_server.wyoming_port, audio)
            other = peer.transcribe(audio)
            assert mine.text is not None and other.text is not None, (mine.error, other.error)
            ours.append(support.wer(reference, mine.text))
            theirs.append(support.wer(reference, other.text))
            figures = f"ours {mine.seconds:.2f}s wer {ours[-1]:.3f}; peer {other.seconds:.2f}s wer {theirs[-1]:.3f}"
            record_property(key, figures)
        assert np.mean(ours) <= np.mean(theirs) + 0.05, (ours, theirs)
        assert max(ours) <= 0.25, ours
    finally:
        peer.stop()


def test_sigterm_lets_a_wyoming_request_finish(tmp_path):
    port = support.free_port()
    running = support.start_server(tmp_path, support.tiny_en(), "--wyoming-port", str(port))
    audio = wk.pcm(support.speak(" ".join(support.PARAGRAPH[:4])))
    answers = []
    client = threading.Thread(target=lambda: answers.append(wk.transcribe(HOST, port, audio)))
    try:
        client.start()
        deadline = time.monotonic() + 60
        while requests.get(running.url + "/health", headers=running.headers, timeout=10).json()["running"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        running.process.send_signal(signal.SIGTERM)
        client.join(120)
        assert running.process.wait(60) == 0
    finally:
        running.stop()
    assert answers and answers[0].text, answers
    assert support.wer(" ".join(support.PARAGRAPH[:4]), answers[0].text) <= 0.25


def _rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def test_idle_unload_gives_the_memory_back_and_the_next_request_loads_it(tmp_path):
    port = support.free_port()
    running = support.start_server(
        tmp_path, support.tiny_en(), "--wyoming-port", str(port), "--idle-unload-seconds", "2"
    )
    try:
        health = lambda: requests.get(running.url + "/health", headers=running.headers, timeout=10)  # noqa: E731
        assert running.post(audio=support.speech("fox")).status_code == 200
        loaded = _rss_mib(running.process.pid)
        deadline = time.monotonic() + 30
        while health().json()["status"] != "unloaded":
            assert time.monotonic() < deadline, health().json()
            time.sleep(0.2)
        assert health().status_code == 200  # unloaded still answers: the next request loads it
        unloaded = _rss_mib(running.process.pid)
        # tiny.en's int8 weights and their buffers: about 80 MiB here.
        assert loaded - unloaded >= 30, (loaded, unloaded)
        answer = wk.transcribe(HOST, port, wk.pcm(support.speak(support.SENTENCES["weather"])))
        assert support.wer(support.SENTENCES["weather"], answer.text) <= 0.2
        # The Wyoming request loaded it again (it may have stepped aside once more since: 2 s is short).
        metrics = requests.get(running.url + "/metrics", headers=running.headers, timeout=10).text
        assert 'whisper_model_loads_total{reason="request"} 1.0' in metrics
        unloads = re.search(r'whisper_model_unloads_total\{reason="idle"\} (\S+)', metrics)
        assert unloads and float(unloads.group(1)) in (1.0, 2.0)
    finally:
        running.stop()
