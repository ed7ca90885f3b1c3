"""The engine with the real tiny.en model, in process: what the HTTP tests cannot steer."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_server.config import Config
from whisper_server.engine import Options, load_engine
from whisperlab_testkit import support

pytestmark = pytest.mark.model


class Result:
    def __init__(self, tokens):
        self.sequences_ids = [tokens]
        self.scores = [-0.05]
        self.no_speech_prob = 0.0


class LoopsAtFirst:
    """The real model, except that greedy/beam decoding (temperature 0) falls into a repetition loop,
    as Whisper does on hard audio: the fallback must sample at a higher temperature to recover."""

    def __init__(self, inner, token):
        self._inner, self._token = inner, token
        self.temperatures: list[float] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, encoded, prompts, **kwargs):
        temperature = kwargs.get("sampling_temperature", 0.0) if kwargs.get("sampling_topk", 1) != 1 else 0.0
        self.temperatures.append(temperature)
        if temperature == 0.0:
            return [Result([self._token] * 120) for _ in prompts]
        return self._inner.generate(encoded, prompts, **kwargs)


@pytest.fixture(scope="module")
def engine():
    return load_engine(Config(model=str(support.tiny_en()), streams=1)).engine


LONG = list(support.PARAGRAPH)


@pytest.mark.parametrize("sentences", [LONG[:2], LONG], ids=["note", "long"])
def test_a_window_that_loops_at_temperature_0_is_decoded_again_hotter(engine, sentences):
    """Both paths: a note (WhisperModel.transcribe's own fallback) and long audio in batched chunks
    (the fallback whisperlab adds to faster-whisper's pipeline, which has none)."""
    pause = np.zeros(16000, np.float32)
    audio = np.concatenate([part for s in sentences for part in (support.speak(s), pause)])
    assert (audio.size > 30 * 16000) is (sentences is LONG)
    batcher = engine._model.model
    loop_token = engine._model.hf_tokenizer.encode(" the", add_special_tokens=False).ids[0]
    real, batcher.inner = batcher.inner, LoopsAtFirst(batcher.inner, loop_token)
    try:
        segments, _ = engine.transcribe(audio, Options(timestamps=False))
        text = " ".join(s.text for s in segments)
        temperatures = batcher.inner.temperatures
    finally:
        batcher.inner = real
    assert 0.0 in temperatures and any(t > 0 for t in temperatures), temperatures
    assert support.wer(" ".join(sentences), text) <= 0.3, text


def test_long_json_with_batch_size_1_does_not_repeat_itself(tmp_path):
    """--batch-size 1 decodes long audio window after window. A json answer needs no times, but without
    timestamp tokens each window was cut blindly and primed with the last one's text: two sentences
    alternating for 47 s came back at WER 0.34 (bench step 10), against 0.14 batched."""
    pause = np.zeros(8000, dtype=np.float32)
    pair = [support.SENTENCES["report"], support.SENTENCES["fox"]] * 5
    audio = np.concatenate([x for s in pair for x in (support.speak(s), pause)])
    running = support.start_server(tmp_path, support.tiny_en(), "--batch-size", "1")
    try:
        response = running.post(audio=support.encode(audio, "ogg"), filename="note.ogg", timeout=300)
        assert response.status_code == 200, response.text
        assert support.wer(" ".join(pair), response.json()["text"]) <= 0.2, response.json()["text"]
    finally:
        running.stop()
