"""The state the app carries: draining on shutdown, and the count of requests in flight."""

from __future__ import annotations

from conftest import assert_envelope, post
from whisper_server.state import get_state


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
