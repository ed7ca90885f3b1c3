from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import requests

from whisper_server.app import create_app
from whisper_server.config import Config
from whisper_server.engine import Info, LoadedEngine, Options, Segment, Word

sys.path.insert(0, str(Path(__file__).parent))
import support  # noqa: E402


class FakeEngine:
    """Stands in for faster-whisper in unit tests: fixed segments, optional gate to hold a request."""

    def __init__(self, segments=None, language="en", multilingual=True, gate: Optional[threading.Event] = None,
                 fail: Optional[Exception] = None):
        self.segments = segments if segments is not None else [
            Segment(0, 0, 0.0, 1.5, " Hello there.", (50364, 2425), 0.0, -0.2, 1.1, 0.01,
                    (Word(0.0, 0.6, " Hello", 0.9), Word(0.7, 1.4, " there.", 0.8))),
            Segment(1, 150, 1.5, 3.25, " General Kenobi.", (7133,), 0.0, -0.3, 1.2, 0.02,
                    (Word(1.5, 2.2, " General", 0.9), Word(2.3, 3.2, " Kenobi.", 0.7))),
        ]
        self.language = language
        self.multilingual = multilingual
        self.gate = gate
        self.fail = fail
        self.calls: list[Options] = []

    def transcribe(self, audio: np.ndarray, options: Options):
        self.calls.append(options)
        if self.gate is not None:
            self.gate.wait(timeout=30)
        if self.fail is not None:
            raise self.fail
        segments = self.segments
        if not options.word_timestamps:
            segments = [replace(s, words=None) for s in segments]
        return iter(segments), Info(self.language, len(audio) / 16000)


def make_app(engine=None, **overrides):
    config = Config(model="tiny.en", **overrides)
    engine = engine or FakeEngine()
    app = create_app(config, LoadedEngine(engine, "cpu", "int8"))
    return app


@pytest.fixture
def fake_engine():
    return FakeEngine()


@pytest.fixture
def client(fake_engine):
    return make_app(fake_engine).test_client()


@pytest.fixture(scope="session")
def wav_bytes() -> bytes:
    # Real, decodable audio: the fake engine ignores its content but the decoder does not.
    return support.encode(np.zeros(16000, dtype=np.float32), "wav")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    def __init__(self, url: str, process: subprocess.Popen, log_dir: Path, tmp_dir: Path, key: Optional[str],
                 output: Path):
        self.url, self.process, self.log_dir, self.tmp_dir, self.key, self.output = (
            url, process, log_dir, tmp_dir, key, output)

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def post(self, path="/v1/audio/transcriptions", data: Optional[dict] = None, audio: Optional[bytes] = None,
             filename="note.wav", **kwargs):
        files = {"file": (filename, audio)} if audio is not None else None
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.post(self.url + path, data=data or {"model": "whisper-1"}, files=files,
                             headers=headers, timeout=120, **kwargs)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(tmp: Path, model: Path, *extra: str, key: Optional[str] = "test-key-123") -> RunningServer:
    """The real whisper-server command on a free loopback port; waits for /health to say ready."""
    port = free_port()
    log_dir, tmp_dir = tmp / "logs", tmp / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "whisper_server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(port), "--log-dir", str(log_dir), *extra]
    if key:
        key_file = tmp / "api_key"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        args += ["--api-key-file", str(key_file)]
    output = tmp / "server.out"
    env = {**os.environ, "TMPDIR": str(tmp_dir), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(args, stdout=output.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{output.read_text()}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return RunningServer(url, process, log_dir, tmp_dir, key, output)
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server not ready in time:\n{output.read_text()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real server with tiny.en, an API key and a log folder, shared by the integration tests."""
    running = start_server(tmp_path_factory.mktemp("server"), support.tiny_en(), "--model-alias", "tiny.en")
    yield running
    running.stop()
