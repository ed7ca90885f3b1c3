"""WhisperEngine on a stand-in faster-whisper: which way audio goes (WhisperModel.transcribe or the
batched pipeline) and what it is asked. No real model here."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import Inner


class FakeWhisperModel:
    """faster-whisper's WhisperModel as WhisperEngine uses it: records what it is asked."""

    def __init__(self):
        self.model = Inner()
        self.asked: list[tuple[str, int, dict]] = []

    def transcribe(self, audio, **kwargs):
        self.asked.append(("sequential", audio.size, kwargs))
        return iter([]), type("Info", (), {"language": "en", "duration": audio.size / 16000})()


@pytest.fixture
def recorded(monkeypatch):
    from whisper_server.engine import chunked

    model = FakeWhisperModel()

    class Pipeline:
        def __init__(self, model):
            self.model = model

        def transcribe(self, audio, **kwargs):
            self.model.asked.append(("batched", audio.size, kwargs))
            return iter([]), type("Info", (), {"language": "en", "duration": audio.size / 16000})()

    monkeypatch.setattr(chunked, "ChunkPipeline", Pipeline)
    return model


@pytest.mark.parametrize(
    "seconds, options, path, without_timestamps",
    [
        (5, dict(timestamps=False), "sequential", True),
        (5, dict(timestamps=True), "sequential", False),
        (5, dict(timestamps=False, word_timestamps=True), "sequential", False),
        (30, dict(timestamps=False), "sequential", True),
        (31, dict(timestamps=False), "batched", True),
        # --batch-size 1: past one window the timestamps place each window's cut, json or not.
        (31, dict(timestamps=False, batch_size=1), "sequential", False),
        (300, dict(timestamps=True), "batched", False),
    ],
)
def test_the_engine_batches_audio_past_one_window_and_skips_unwanted_timestamps(
    recorded, seconds, options, path, without_timestamps
):
    from whisper_server.engine import Options
    from whisper_server.engine.whisper import WhisperEngine

    batch_size = options.pop("batch_size", 8)
    engine = WhisperEngine(recorded, beam_size=5, vad=True, batch_size=batch_size)
    list(engine.transcribe(np.zeros(seconds * 16000, dtype=np.float32), Options(**options))[0])
    ((taken, size, kwargs),) = recorded.asked
    assert (taken, size) == (path, seconds * 16000)
    assert kwargs["without_timestamps"] is without_timestamps
    assert kwargs["temperature"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] and kwargs["vad_filter"] is True
    if path == "batched":
        assert kwargs["batch_size"] == 8


def test_the_text_so_far_reads_on_only_where_windows_follow_each_other(recorded):
    from whisper_server.engine import Options
    from whisper_server.engine.whisper import WhisperEngine

    engine = WhisperEngine(recorded, beam_size=5, vad=True, batch_size=8)
    for seconds in (20, 90):
        options = Options(prompt="Names: Ada.", context="and so we met.")
        list(engine.transcribe(np.zeros(seconds * 16000, dtype=np.float32), options)[0])
    (short, _, short_kwargs), (long, _, long_kwargs) = recorded.asked
    assert (short, short_kwargs["initial_prompt"]) == ("sequential", "Names: Ada. and so we met.")
    assert (long, long_kwargs["initial_prompt"]) == ("batched", "Names: Ada.")


def test_batch_size_one_keeps_long_audio_sequential(recorded):
    from whisper_server.engine import Options
    from whisper_server.engine.whisper import WhisperEngine

    engine = WhisperEngine(recorded, beam_size=5, vad=True, batch_size=1)
    list(engine.transcribe(np.zeros(90 * 16000, dtype=np.float32), Options())[0])
    assert recorded.asked[0][0] == "sequential"
