"""The model steps aside when idle: unload and load, what waits meanwhile, and what /health, /metrics
and the /v1 endpoints say. A fake engine counts its unloads and loads."""

from __future__ import annotations

import re
import threading
import time

import pytest

from conftest import FakeEngine, assert_envelope, make_app, post
from whisper_server.errors import APIError
from whisper_server.residency import LOADING, READY, UNLOADED, Residency
from whisper_server.state import get_state


class Unloadable(FakeEngine):
    def __init__(self, load_gate=None, load_fails=False, **kwargs):
        super().__init__(**kwargs)
        self.unloads = 0
        self.loads = 0
        self.load_gate = load_gate
        self.load_fails = load_fails
        self.busy = False  # CTranslate2 keeps its weights while a model call runs

    def unload(self, wait=0.0):
        self.unloads += 1
        return not self.busy

    def load(self):
        if self.load_gate is not None:
            self.load_gate.wait(timeout=30)
        if self.load_fails:
            raise RuntimeError("model.bin is gone")
        self.loads += 1


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_request_loads_an_unloaded_model_and_holds_it():
    engine = Unloadable()
    residency = Residency(engine)
    assert residency.unload() == UNLOADED and engine.unloads == 1
    assert residency.unload() == UNLOADED and engine.unloads == 1  # once
    with residency.hold():
        assert residency.state == READY and engine.loads == 1 and residency.users == 1
    assert residency.users == 0


def test_an_unload_waits_for_the_running_transcription_and_holds_new_ones_back():
    engine = Unloadable()
    residency = Residency(engine)
    running, done = threading.Event(), threading.Event()

    def transcribe():
        with residency.hold():
            running.set()
            done.wait(10)

    worker = threading.Thread(target=transcribe)
    worker.start()
    running.wait(5)
    unloading = threading.Thread(target=residency.unload)
    unloading.start()
    time.sleep(0.3)
    assert engine.unloads == 0 and residency.state == READY  # not under a running transcription
    done.set()
    unloading.join(5)
    worker.join(5)
    assert engine.unloads == 1 and residency.state == UNLOADED


def test_an_unload_gives_up_when_the_work_does_not_end():
    residency = Residency(Unloadable())
    release = threading.Event()
    held = threading.Event()

    def transcribe():
        with residency.hold():
            held.set()
            release.wait(10)

    worker = threading.Thread(target=transcribe)
    worker.start()
    held.wait(5)
    with pytest.raises(APIError) as refused:
        residency.unload(wait=0.3)
    assert refused.value.status == 409 and refused.value.code == "model_busy"
    assert residency.state == READY
    release.set()
    worker.join(5)
    with residency.hold():  # nothing was left blocked
        pass


def test_requests_that_come_while_it_loads_wait_then_share_one_load():
    gate = threading.Event()
    engine = Unloadable(load_gate=gate)
    residency = Residency(engine)
    residency.unload()
    results = []

    def transcribe():
        with residency.hold():
            results.append(residency.state)

    workers = [threading.Thread(target=transcribe) for _ in range(3)]
    for worker in workers:
        worker.start()
    assert wait_for(lambda: residency.state == LOADING)
    time.sleep(0.3)
    assert results == []
    gate.set()
    for worker in workers:
        worker.join(5)
    assert results == [READY] * 3 and engine.loads == 1


def test_a_client_that_leaves_while_the_model_loads_stops_waiting():
    gate = threading.Event()
    residency = Residency(Unloadable(load_gate=gate))
    residency.unload()
    loader = threading.Thread(target=residency.load)
    loader.start()
    assert wait_for(lambda: residency.state == LOADING)

    class Gone(Exception):
        pass

    def check():
        raise Gone

    began = time.monotonic()
    with pytest.raises(Gone):
        with residency.hold(check):
            pass
    assert time.monotonic() - began < 5
    gate.set()
    loader.join(5)
    assert residency.users == 0 and residency.state == READY


def test_a_failed_load_is_a_503_and_the_next_request_tries_again():
    engine = Unloadable(load_fails=True)
    residency = Residency(engine)
    residency.unload()
    with pytest.raises(APIError) as failed:
        with residency.hold():
            pass
    assert failed.value.status == 503 and failed.value.code == "model_load_failed"
    assert "model.bin is gone" in failed.value.message
    assert residency.state == UNLOADED and residency.users == 0
    engine.load_fails = False
    with residency.hold():
        assert residency.state == READY


def test_idle_unload_happens_after_the_idle_time_only():
    engine = Unloadable()
    residency = Residency(engine, idle_seconds=0.4)
    try:
        with residency.hold():
            time.sleep(0.8)  # a long transcription is not idleness
            assert engine.unloads == 0
        assert engine.unloads == 0
        assert wait_for(lambda: residency.state == UNLOADED, 5)
        assert engine.unloads == 1
    finally:
        residency.close()


class SlowMetrics:
    """/metrics' counters, slow to count: where the reload's thread is after it made the model ready."""

    def __init__(self):
        from whisper_server.metrics import Metrics

        self._real = Metrics(admission=type("A", (), {"waiting": 0, "running": 0})())

    def __getattr__(self, name):
        real = getattr(self._real, name)
        if name != "model_loads":
            return real

        class Slow:
            def labels(self, *values):
                time.sleep(0.5)
                return real.labels(*values)

        return Slow()


def test_an_unload_waiting_on_a_reload_does_not_pull_the_model_from_under_its_request():
    """The request that reloads the model holds it from the moment it is ready: an unload asked for
    meanwhile (ssh wsl unload while a Home Assistant command reloads it) waits for that request."""
    gate = threading.Event()

    class Tracked(Unloadable):
        loaded = True

        def unload(self, wait=0.0):
            self.loaded = False
            return super().unload(wait)

        def load(self):
            super().load()
            self.loaded = True

    engine = Tracked(load_gate=gate)
    residency = Residency(engine, metrics=SlowMetrics())
    residency.unload()
    seen = []

    def transcribe():
        with residency.hold():
            time.sleep(0.3)
            seen.append(engine.loaded)

    worker = threading.Thread(target=transcribe)
    worker.start()
    assert wait_for(lambda: residency.state == LOADING)
    unloading = threading.Thread(target=residency.unload)
    unloading.start()
    time.sleep(0.1)
    gate.set()
    worker.join(10)
    unloading.join(10)
    assert seen == [True]
    assert residency.state == UNLOADED and engine.unloads == 2


def test_an_engine_that_kept_its_weights_is_not_called_unloaded():
    """CTranslate2 skips an unload while a model call runs: the state says ready, and the caller hears busy."""
    engine = Unloadable()
    engine.busy = True
    residency = Residency(engine)
    with pytest.raises(APIError) as refused:
        residency.unload(wait=0.2)
    assert refused.value.code == "model_busy" and residency.state == READY
    engine.busy = False
    assert residency.unload() == UNLOADED


def test_no_idle_unload_by_default():
    engine = Unloadable()
    residency = Residency(engine)
    time.sleep(0.3)
    assert residency.idle_seconds == 0 and residency.state == READY and engine.unloads == 0


# --- over HTTP -----------------------------------------------------------------------------------------


def test_unload_and_load_endpoints_health_and_metrics(wav_bytes):
    engine = Unloadable()
    app = make_app(engine)
    client = app.test_client()
    unloaded = client.post("/v1/models/whisper-1/unload")
    assert unloaded.status_code == 200
    assert unloaded.get_json() == {
        "id": "whisper-1",
        "object": "model",
        "created": 1677610602,
        "owned_by": "whisperlab",
        "status": "unloaded",
    }
    health = client.get("/health")
    assert health.status_code == 200 and health.get_json()["status"] == "unloaded"
    # The next request loads it again, and is answered.
    answered = post(client, wav_bytes)
    assert answered.status_code == 200 and answered.get_json()["text"]
    assert engine.loads == 1 and client.get("/health").get_json()["status"] == "ready"
    assert client.post("/v1/models/tiny.en/unload").get_json()["status"] == "unloaded"
    assert client.post("/v1/models/tiny.en/load").get_json()["status"] == "ready"
    assert client.post("/v1/models/tiny.en/load").get_json()["status"] == "ready"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'whisper_model_unloads_total{reason="request"} 2.0' in metrics
    assert 'whisper_model_loads_total{reason="request"} 2.0' in metrics
    assert "whisper_model_loaded 1.0" in metrics
    assert engine.unloads == 2 and engine.loads == 2


def test_unload_needs_the_key_and_a_known_model(tmp_path):
    key = tmp_path / "key"
    key.write_text("sekret\n")
    from whisper_server.config import Config, _with_api_key

    config = _with_api_key(Config(model="tiny.en", api_key_file=key))
    from whisper_server.app import create_app
    from whisper_server.engine import LoadedEngine

    engine = Unloadable()
    client = create_app(config, LoadedEngine(engine, "cpu", "int8")).test_client()
    assert_envelope(client.post("/v1/models/whisper-1/unload"), 401)
    auth = {"Authorization": "Bearer sekret"}
    assert_envelope(client.post("/v1/models/nope/unload", headers=auth), 404, code="model_not_found")
    assert engine.unloads == 0
    assert client.post("/v1/models/whisper-1/unload", headers=auth).status_code == 200
    details = client.get("/health", headers=auth).get_json()
    assert details["status"] == "unloaded" and details["device"] == "cpu"


def test_a_load_that_fails_answers_503_in_the_envelope(wav_bytes):
    engine = Unloadable(load_fails=True)
    client = make_app(engine).test_client()
    client.post("/v1/models/whisper-1/unload")
    failed = post(client, wav_bytes)
    assert_envelope(failed, 503, code="model_load_failed")
    assert failed.headers["Retry-After"]
    assert client.get("/health").get_json()["status"] == "unloaded"


def test_idle_unload_over_http(wav_bytes):
    engine = Unloadable()
    app = make_app(engine, idle_unload_seconds=0.3)
    client = app.test_client()
    try:
        assert wait_for(lambda: client.get("/health").get_json()["status"] == "unloaded", 5)
        assert post(client, wav_bytes).status_code == 200
        assert engine.loads >= 1
        # It may step aside again before /metrics is read: at least one idle unload, and a load per unload.
        metrics = client.get("/metrics").get_data(as_text=True)
        unloads = float(re.search(r'whisper_model_unloads_total\{reason="idle"\} (\S+)', metrics).group(1))
        assert unloads >= 1 and engine.unloads == unloads
    finally:
        get_state(app).residency.close()
