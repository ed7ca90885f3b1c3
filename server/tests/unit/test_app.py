"""The app's per-request hooks: request ids, the header limit, one log line per request whatever the
client sends, and uploads kept in memory."""

from __future__ import annotations

import io

from conftest import assert_envelope


def test_huge_header_gets_431(client):
    assert_envelope(client.get("/v1/models", headers={"X-Junk": "a" * 100_000}), 431, code="headers_too_large")


def test_request_id_is_honoured_or_made(client):
    given = client.get("/v1/models", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    unsafe = client.get("/v1/models", headers={"X-Request-ID": "bad id\x7f"})
    assert len(unsafe.headers["X-Request-ID"]) == 32


def test_request_id_with_a_trailing_newline_is_replaced(client):
    forged = client.get("/v1/models", environ_overrides={"HTTP_X_REQUEST_ID": "abc\n"})
    assert len(forged.headers["X-Request-ID"]) == 32


def test_nothing_a_client_sends_forges_a_log_line(client, caplog):
    caplog.set_level("INFO", logger="whisper_server.access")
    client.get("/x%0Arequest_id=forged status=200%0D%20").close()
    client.open("/v1/models%0a", method="GET").close()
    records = [r.getMessage() for r in caplog.records if r.name == "whisper_server.access"]
    assert len(records) == 2
    for line in records:
        assert "\n" not in line and "\r" not in line
        assert line.count("request_id=") == 1 and line.count("status=") == 1
    assert "path=/x%0Arequest_id%3Dforged%20status%3D200%0D%20 " in records[0]


def test_large_uploads_stay_in_memory():
    from werkzeug import Request
    from werkzeug.test import EnvironBuilder

    from whisper_server.app import InMemoryRequest

    def file_stream(request_class):
        builder = EnvironBuilder(method="POST", data={"file": (io.BytesIO(b"x" * 2_000_000), "big.wav")})
        return request_class(builder.get_environ()).files["file"].stream

    assert isinstance(file_stream(InMemoryRequest), io.BytesIO)
    # Stock Werkzeug would have rolled this part over into a temporary file on disk.
    spooled = file_stream(Request)
    assert not isinstance(spooled, io.BytesIO) and getattr(spooled, "_rolled", True)
