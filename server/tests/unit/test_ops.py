"""/health and /metrics on a fake engine: readiness, the counters, and what they tell without the key."""

from __future__ import annotations

from conftest import FakeEngine, assert_envelope, make_app, post
from whisper_server.app import create_app
from whisper_server.config import Config
from whisper_server.engine import LoadedEngine
from whisper_server.state import get_state


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
    assert {"model", "gpu", "uptime_s", "queue_depth", "workers", "batch_size", "streams", "sequential_s"} <= set(
        health
    )


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


KEY = "sk-whisperlab-test-0123456789abcdef"


BEARER = {"Authorization": f"Bearer {KEY}"}


def test_metrics_need_the_key():
    client = make_app(api_key=KEY).test_client()
    assert_envelope(client.get("/metrics"), 401, code="missing_api_key")
    assert_envelope(client.get("/metrics", headers={"Authorization": "Bearer nope"}), 401, code="invalid_api_key")
    right = client.get("/metrics", headers=BEARER)
    assert right.status_code == 200 and "whisper_requests_total" in right.get_data(as_text=True)


def test_metrics_stay_open_when_no_key_is_configured():
    assert make_app().test_client().get("/metrics").status_code == 200


def test_health_without_the_key_tells_only_its_status():
    app = create_app(Config(model="/srv/models/secret-model", api_key=KEY))
    client = app.test_client()
    loading = client.get("/health")
    assert (loading.status_code, loading.get_json(), loading.headers["Retry-After"]) == (
        503,
        {"status": "loading"},
        "5",
    )
    get_state(app).set_loaded(LoadedEngine(FakeEngine(), "cuda", "float16", gpu_name="RTX 4070"))
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": KEY}):
        response = client.get("/health", headers=headers)
        assert (response.status_code, response.get_json()) == (200, {"status": "ready"})
        assert "secret-model" not in response.get_data(as_text=True)
    full = client.get("/health", headers=BEARER).get_json()
    assert (full["status"], full["model"], full["gpu"], full["device"]) == (
        "ready",
        "/srv/models/secret-model",
        "RTX 4070",
        "cuda",
    )
    assert "version" in full
    get_state(app).drain(0.0)
    draining = client.get("/health")
    assert (draining.status_code, draining.get_json()) == (503, {"status": "shutting_down"})
    assert draining.headers["Retry-After"] == "5"
    assert client.get("/health", headers=BEARER).get_json()["model"] == "/srv/models/secret-model"


def test_health_is_whole_when_no_key_is_configured():
    body = make_app().test_client().get("/health").get_json()
    assert body["status"] == "ready" and body["model"] == "tiny.en"
