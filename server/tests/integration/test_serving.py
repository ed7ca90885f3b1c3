"""What waitress lets a request cost before the app has judged it: the app on a real waitress server in
this process (serving.py, as cli.py serves it), spoken to over real sockets. The engine is a fake."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import FakeEngine, make_app
from whisper_server import serving
from whisper_server.state import get_state

KEY = "sk-whisperlab-test-0123456789abcdef"


class Served:
    """The app on a real waitress server in this process, as cli.py serves it."""

    def __init__(self, app, config, **kwargs):
        self.server = serving.create_server(app, replace(config, host="127.0.0.1", port=0), **kwargs)
        self.port = self.server.effective_port
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            self.server.run()
        except OSError:  # close() pulls the sockets from under the loop's select()
            pass

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def close(self):
        self.server.close()


@pytest.fixture
def served():
    running = []

    def start(app, **kwargs):
        served = Served(app, get_state(app).config, **kwargs)
        running.append(served)
        return served

    yield start
    for served in running:
        served.close()


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 response with a Content-Length (what waitress and Flask send here)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def request_head(length: int, key=None, host="127.0.0.1", content_type="application/octet-stream", extra="") -> bytes:
    """A transcription request's headers, for a body of `length` bytes sent separately."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def transcription_request(wav: bytes, key=None, extra="") -> bytes:
    boundary = "b0undary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        ).encode()
        + wav
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f"multipart/form-data; boundary={boundary}"
    return request_head(len(form), key, content_type=content_type, extra=extra) + form


def test_the_body_limit_is_the_upload_limit_and_its_form(served):
    app = make_app(max_upload_mb=1, api_key=KEY)
    config = get_state(app).config
    assert config.max_body_bytes == 1024 * 1024 + 256 * 1024 == app.config["MAX_CONTENT_LENGTH"]
    server = served(app).server
    assert server.adj.max_request_body_size == config.max_body_bytes + 1  # waitress refuses at >=


@pytest.mark.parametrize("expect", ["", "Expect: 100-continue\r\n"])
def test_a_body_over_the_limit_is_refused_from_its_headers_with_the_envelope(served, expect):
    server = served(make_app(max_upload_mb=1, api_key=KEY))
    # Between the limit and twice it: the waitress set-up before this waited for all of it.
    with server.connect() as sock:
        sock.sendall(request_head(2 * 1024 * 1024, KEY, extra=expect))
        status, headers, body = read_response(sock)  # no body sent: the answer comes from the headers
    assert status == 413 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "file_too_large" and error["param"] == "file" and "1 MiB" in error["message"]
    assert headers["connection"] == "close"


def spooled(folder: Path) -> int:
    """Bytes this process holds in (unlinked) temporary files under `folder`: waitress's spooled bodies."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder)):
                total += os.fstat(int(fd)).st_size
        except OSError:
            pass
    return total


@pytest.mark.parametrize(
    "key, host, status, code",
    [
        (None, "127.0.0.1", 401, "missing_api_key"),
        ("nope", "127.0.0.1", 401, "invalid_api_key"),
        (KEY, "rebound.example", 400, "host_not_allowed"),
        (KEY, "127.0.0.1", 400, "invalid_content_type"),  # kept: it reaches the view, which wants a form
    ],
)
def test_a_strangers_body_is_read_but_never_kept(served, monkeypatch, tmp_path, key, host, status, code):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where waitress's TemporaryFile goes
    server = served(make_app(api_key=KEY, allowed_hosts=("127.0.0.1",)))
    kept = code == "invalid_content_type"
    mib = 1024 * 1024
    with server.connect() as sock:
        sock.sendall(request_head(3 * mib, key, host) + b"\0" * (2 * mib))
        deadline = time.monotonic() + 5
        while kept and spooled(tmp_path) < mib and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        held = spooled(tmp_path)
        sock.sendall(b"\0" * mib)
        answer, headers, body = read_response(sock)
    assert held >= mib if kept else held == 0
    assert (answer, json.loads(body)["error"]["code"]) == (status, code)
    assert headers["x-request-id"]


def test_a_stranger_gets_the_envelope_and_a_log_line(served, caplog, wav_bytes):
    caplog.set_level("INFO", logger="whisper_server.access")
    server = served(make_app(api_key=KEY))
    for key, expected in ((None, 401), (KEY, 200)):
        with server.connect() as sock:
            sock.sendall(transcription_request(wav_bytes, key, extra=f"X-Request-ID: sec-{expected}\r\n"))
            status, headers, body = read_response(sock)
        assert status == expected, body
        assert headers["x-request-id"] == f"sec-{expected}"
    assert json.loads(body)["text"] == "Hello there. General Kenobi."
    deadline = time.monotonic() + 5
    while "request_id=sec-401 method=POST" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)  # written when waitress closes the response
    assert "request_id=sec-401 method=POST path=/v1/audio/transcriptions status=401" in caplog.text


def test_idle_connections_close_but_a_long_request_is_left_alone(served, wav_bytes):
    assert serving.IDLE_TIMEOUT_S == 30
    gate = threading.Event()
    server = served(make_app(FakeEngine(gate=gate)), idle_timeout=1)
    idle, busy = server.connect(), server.connect()
    busy.sendall(transcription_request(wav_bytes))
    try:
        idle.settimeout(6)
        assert idle.recv(1) == b"", "the idle connection was closed"
        gate.set()  # the transcription ran for longer than the idle timeout
        status, _, body = read_response(busy)
        assert status == 200 and json.loads(body)["text"]
    finally:
        gate.set()
        idle.close()
        busy.close()
