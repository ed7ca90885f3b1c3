"""Every error leaves the app as an envelope: unknown routes and methods, and real faults."""

from __future__ import annotations

import io

from conftest import URL, FakeEngine, assert_envelope, make_app


def test_unknown_route_and_method_get_envelopes(client):
    assert_envelope(client.get("/v1/nothing"), 404)
    assert_envelope(client.get(URL), 405)


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
