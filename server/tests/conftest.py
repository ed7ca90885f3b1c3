from __future__ import annotations

import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from whisper_server.app import create_app
from whisper_server.config import Config
from whisper_server.engine import Info, LoadedEngine, Options, Segment, Word

sys.path.insert(0, str(Path(__file__).parent))
import support  # noqa: E402
from support import free_port, start_server  # noqa: E402,F401  (re-exported for the tests)


class FakeEngine:
    """Stands in for faster-whisper in unit tests: fixed segments, optional gate to hold a request."""

    def __init__(
        self,
        segments=None,
        language="en",
        multilingual=True,
        gate: Optional[threading.Event] = None,
        fail: Optional[Exception] = None,
    ):
        self.segments = (
            segments
            if segments is not None
            else [
                Segment(
                    0,
                    0,
                    0.0,
                    1.5,
                    " Hello there.",
                    (50364, 2425),
                    0.0,
                    -0.2,
                    1.1,
                    0.01,
                    (Word(0.0, 0.6, " Hello", 0.9), Word(0.7, 1.4, " there.", 0.8)),
                ),
                Segment(
                    1,
                    150,
                    1.5,
                    3.25,
                    " General Kenobi.",
                    (7133,),
                    0.0,
                    -0.3,
                    1.2,
                    0.02,
                    (Word(1.5, 2.2, " General", 0.9), Word(2.3, 3.2, " Kenobi.", 0.7)),
                ),
            ]
        )
        self.language = language
        self.multilingual = multilingual
        self.gate = gate
        self.fail = fail
        self.calls: list[Options] = []

    def transcribe(self, audio: np.ndarray, options: Options, check=lambda: None):
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


def assert_envelope(response, status, param=None, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


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


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real server with tiny.en, an API key and a log folder, shared by the integration tests."""
    running = start_server(tmp_path_factory.mktemp("server"), support.tiny_en(), "--model-alias", "tiny.en")
    yield running
    running.stop()
