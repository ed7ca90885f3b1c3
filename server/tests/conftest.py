"""Fixtures and helpers shared by unit/ (a fake engine, Flask's test client) and integration/ (the real
server, model and sockets). The speech, encoding and model helpers are the test kit's (tests/kit)."""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from typing import Optional

import av
import ctranslate2
import numpy as np
import pytest

from whisper_server.app import create_app
from whisper_server.config import Config
from whisper_server.engine import SAMPLE_RATE, Info, LoadedEngine, Options, Segment, Word
from whisperlab_testkit import support
from whisperlab_testkit.support import free_port, start_server  # noqa: F401  (re-exported for the tests)


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


# --- for the tests of the HTTP layer on a fake engine ---------------------------------------------------

URL = "/v1/audio/transcriptions"


def post(client, audio, **fields):
    data = {"model": "whisper-1", **fields}
    if audio is not None:
        data["file"] = (io.BytesIO(audio), "note.wav")
    return client.post(URL, data=data, content_type="multipart/form-data")


# --- for the Batcher's and WhisperEngine's tests: CTranslate2's Whisper, stood in for --------------------


class Inner:
    """CTranslate2's Whisper, as far as the Batcher uses it. `gate` holds the first generate call
    until the test has queued the others behind it."""

    is_multilingual = False
    device = "cpu"

    def __init__(self, gate: threading.Event | None = None, fail_on: float | None = None):
        self.gate = gate
        self.fail_on = fail_on
        self.encoded: list[int] = []  # windows per encode call
        self.generated: list[tuple[int, dict]] = []  # windows and settings per generate call
        self.aligned: list[np.ndarray] = []
        self.started = threading.Event()

    def encode(self, features, to_cpu=False):
        array = np.asarray(features)
        self.encoded.append(array.shape[0])
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(array[:, :1, :3]))

    def generate(self, encoded, prompts, **kwargs):
        first = not self.started.is_set()
        self.started.set()
        if self.gate is not None and first:
            assert self.gate.wait(10)
        windows = np.asarray(encoded)
        self.generated.append((windows.shape[0], kwargs))
        if self.fail_on is not None and self.fail_on in windows[:, 0, 0]:
            raise ValueError("this window breaks the model")
        return [(float(w[0, 0]), tuple(p)) for w, p in zip(windows, prompts)]

    def align(self, encoded, *args):
        self.aligned.append(np.asarray(encoded).copy())
        return "aligned"


# --- for the tests of decoding in pieces and of jobs: audio made here, PCM or any PyAV codec ------------


def encode(samples: np.ndarray, container: str = "wav", codec: str = "pcm_s16le") -> io.BytesIO:
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as file:
        stream = file.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for start in range(0, pcm.size, SAMPLE_RATE):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + SAMPLE_RATE], format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                file.mux(packet)
        for packet in stream.encode(None):
            file.mux(packet)
    out.seek(0)
    return out


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
