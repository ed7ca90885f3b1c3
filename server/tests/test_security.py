"""Nothing fails open, and strangers spend nothing: the key at start, the Host allowlist, what /health
and /metrics tell without the key, and what waitress lets a request cost before the app has seen it."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import FakeEngine, assert_envelope, make_app
from whisper_server import serving
from whisper_server.app import create_app
from whisper_server.config import Config, ConfigError, load_config
from whisper_server.engine import LoadedEngine
from whisper_server.state import get_state

KEY = "sk-whisperlab-test-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {KEY}"}

# --- nothing fails open: no key, no listening beyond this machine ---------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.168.1.50", "wsl.home"])
@pytest.mark.parametrize("environ", [{}, {"WHISPER_API_KEY": ""}, {"WHISPER_API_KEY": " \t\n"}])
def test_listening_beyond_loopback_without_a_key_is_refused(host, environ):
    with pytest.raises(ConfigError, match="no API key") as refused:
        load_config(["--model", "x", "--host", host], environ=environ)
    message = str(refused.value)
    assert "--api-key-file" in message and "127.0.0.1" in message
    if "WHISPER_API_KEY" in environ:
        assert "WHISPER_API_KEY is set but empty" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost", "LocalHost"])
def test_loopback_without_a_key_is_allowed(host):
    config = load_config(["--model", "x", "--host", host], environ={"WHISPER_API_KEY": " "})
    assert config.api_key is None


def test_a_key_lets_the_server_listen_anywhere(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    from_file = load_config(["--model", "x", "--host", "0.0.0.0", "--api-key-file", str(key_file)], environ={})
    from_env = load_config(["--model", "x"], environ={"WHISPER_HOST": "192.168.1.50", "WHISPER_API_KEY": KEY})
    assert from_file.api_key == from_env.api_key == KEY
    assert (from_file.host, from_env.host) == ("0.0.0.0", "192.168.1.50")


def test_a_bare_start_listens_on_loopback_only():
    # Like whisper.cpp's server: with no --host, nothing beyond this machine can reach it, and no key is needed.
    config = load_config(["--model", "x"], environ={})
    assert config.host == "127.0.0.1" and config.api_key is None


def test_the_command_exits_2_rather_than_listen_openly():
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_")}
    result = subprocess.run(
        [sys.executable, "-m", "whisper_server", "--model", "x", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, "WHISPER_API_KEY": "  "},
    )
    assert result.returncode == 2, result.stderr
    assert "no API key" in result.stderr and "listening" not in result.stdout + result.stderr


def test_a_key_given_in_the_environment_leaves_it(monkeypatch):
    """Children (nvidia-smi, ctranslate2's helpers) inherit os.environ: the key must not be there."""
    monkeypatch.setenv("WHISPER_API_KEY", KEY)
    config = load_config(["--model", "x"])
    assert config.api_key == KEY
    assert "WHISPER_API_KEY" not in os.environ
    # Even when a key file wins over it.
    monkeypatch.setenv("WHISPER_API_KEY", "other")
    monkeypatch.setenv("WHISPER_HOST", "127.0.0.1")
    load_config(["--model", "x"])
    assert "WHISPER_API_KEY" not in os.environ


# --- the Host allowlist, against DNS rebinding -----------------------------------------------------


def test_allowed_hosts_are_names_without_ports_in_lower_case():
    config = load_config(
        ["--model", "x", "--host", "127.0.0.1"],
        environ={"WHISPER_ALLOWED_HOSTS": " WSL.home:8000, wsl ,[::1]:8000,192.168.1.50, 0:0:0:0:0:0:0:1,localhost., "},
    )
    assert config.allowed_hosts == ("wsl.home", "wsl", "::1", "192.168.1.50", "localhost")
    assert load_config(["--model", "x", "--host", "::1"], environ={}).allowed_hosts == ()
    flag = load_config(["--model", "x", "--host", "::1", "--allowed-hosts", "a.b"], environ={})
    assert flag.allowed_hosts == ("a.b",)


@pytest.mark.parametrize("value", ["wsl home", "evil/x", "a@b", "[::1"])
def test_a_malformed_allowed_host_is_named(value):
    with pytest.raises(ConfigError, match="--allowed-hosts / WHISPER_ALLOWED_HOSTS"):
        load_config(["--model", "x", "--host", "127.0.0.1", "--allowed-hosts", value], environ={})


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


# --- /metrics and /health without the key ----------------------------------------------------------


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


# --- waitress: what a request may cost before the app has judged it --------------------------------


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
