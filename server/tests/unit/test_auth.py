"""The API key and the Host allowlist (against DNS rebinding), on a fake engine."""

from __future__ import annotations

import io

import pytest

from conftest import URL, FakeEngine, assert_envelope, make_app, post


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
    # A probe needs no key to learn the status; the figures need it (test_ops.py has the rest).
    assert client.get("/health").get_json() == {"status": "ready"}
    assert_envelope(client.get("/metrics"), 401, code="missing_api_key")
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


KEY = "sk-whisperlab-test-0123456789abcdef"


BEARER = {"Authorization": f"Bearer {KEY}"}


ALLOWED = ("wsl.home", "wsl", "192.168.1.50", "127.0.0.1", "::1", "localhost")


@pytest.mark.parametrize("path", ["/health", "/metrics", "/v1/models", "/nowhere"])
def test_a_host_not_listed_gets_400_before_anything_else(path):
    client = make_app(api_key=KEY, allowed_hosts=ALLOWED).test_client()
    response = client.get(path, headers={"Host": "rebound.attacker.example", **BEARER})
    error = assert_envelope(response, 400, code="host_not_allowed")
    assert "rebound.attacker.example" in error["message"]
    assert response.headers["X-Request-ID"]


def test_a_rebound_transcription_never_reaches_the_engine(wav_bytes):
    engine = FakeEngine()
    client = make_app(engine, allowed_hosts=ALLOWED).test_client()
    response = client.post(
        "/v1/audio/transcriptions",
        headers={"Host": "attacker.example:8000"},
        data={"model": "whisper-1", "file": (io.BytesIO(wav_bytes), "a.wav")},
        content_type="multipart/form-data",
    )
    assert_envelope(response, 400, code="host_not_allowed")
    assert engine.calls == []


@pytest.mark.parametrize(
    "host", ["wsl.home:8000", "WSL.Home", "wsl:8000", "192.168.1.50:8000", "[::1]:8000", "localhost"]
)
def test_listed_hosts_answer_whatever_their_port_and_case(host):
    client = make_app(allowed_hosts=ALLOWED).test_client()
    assert client.get("/v1/models", headers={"Host": host}).status_code == 200


def test_no_allowlist_checks_no_host():
    client = make_app().test_client()
    assert client.get("/v1/models", headers={"Host": "anything.example"}).status_code == 200
