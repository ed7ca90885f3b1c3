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


class Recording:
    """The real model, recording the temperature of each model call."""

    def __init__(self, inner):
        self._inner = inner
        self.temperatures: list[float] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, encoded, prompts, **kwargs):
        sampled = kwargs.get("sampling_topk", 1) != 1
        self.temperatures.append(kwargs.get("sampling_temperature", 0.0) if sampled else 0.0)
        return self._inner.generate(encoded, prompts, **kwargs)


@pytest.fixture(scope="module")
def engine():
    return load_engine(Config(model=str(support.tiny_en()), streams=1)).engine


LONG = list(support.PARAGRAPH)


def spoken(sentences, pause_s=1.0):
    pause = np.zeros(int(16000 * pause_s), np.float32)
    return np.concatenate([part for s in sentences for part in (support.speak(s), pause)])


def decoded(engine, audio, batched, stand_in):
    """The text and the model's stand-in, long audio batched in chunks or decoded window after window."""
    batcher = engine._model.model
    real, batcher.inner = batcher.inner, stand_in(batcher.inner)
    kept = engine._sequential_samples
    engine._sequential_samples = 30 * 16000 if batched else 600 * 16000
    try:
        segments, _ = engine.transcribe(audio, Options(timestamps=False))
        return " ".join(s.text for s in segments), batcher.inner
    finally:
        batcher.inner = real
        engine._sequential_samples = kept


@pytest.mark.parametrize(
    "sentences, batched", [(LONG[:2], False), (LONG, False), (LONG, True)], ids=["note", "long", "long-batched"]
)
def test_a_window_that_loops_at_temperature_0_is_decoded_again_hotter(engine, sentences, batched):
    """Every path: a note and long audio window after window (WhisperModel.transcribe's own fallback,
    behind LoopAwareWhisperModel's test), and long audio in batched chunks (the fallback whisperlab adds
    to faster-whisper's pipeline, which has none)."""
    audio = spoken(sentences)
    assert (audio.size > 30 * 16000) is (sentences is LONG)
    loop_token = engine._model.hf_tokenizer.encode(" the", add_special_tokens=False).ids[0]
    text, model = decoded(engine, audio, batched, lambda inner: LoopsAtFirst(inner, loop_token))
    assert 0.0 in model.temperatures and any(t > 0 for t in model.temperatures), model.temperatures
    assert support.wer(" ".join(sentences), text) <= 0.3, text


@pytest.mark.parametrize("batched", [False, True], ids=["window-after-window", "batched"])
def test_speech_that_repeats_itself_is_not_resampled(engine, batched):
    """Two sentences alternating for 47 s compress like a loop (ratio ~3.3 per window): Whisper's own
    test sent every window to sampling, 3x the time (bench step 10) and worse text. It loops nowhere,
    so nothing is sampled."""
    pair = [support.SENTENCES["report"], support.SENTENCES["fox"]] * 5
    text, model = decoded(engine, spoken(pair, 0.5), batched, Recording)
    assert model.temperatures and set(model.temperatures) == {0.0}, model.temperatures
    assert support.wer(" ".join(pair), text) <= 0.35, text


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
        text = response.json()["text"]
        # It repeated itself: more words than were said. The rest is tiny.en's hearing of espeak-ng ("fine and
        # steam" for "finance team", the same in all five: 0.29 by itself).
        assert len(text.split()) <= 1.05 * len(" ".join(pair).split()), text
        assert support.wer(" ".join(pair), text) <= 0.3, text
    finally:
        running.stop()


def test_the_length_limit_is_what_the_real_model_decodes(engine):
    """fallback.length_limit against CTranslate2 itself: a decode capped by max_length stops where it says."""
    import ctranslate2

    from whisper_server.engine.fallback import length_limit

    model = engine._model
    batcher = model.model
    audio = np.concatenate([support.speak(s) for s in LONG])[: 30 * 16000]
    features = model.feature_extractor(audio)[..., :-1][None, :, :3000]
    encoded = batcher.inner.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features)))
    tokens = model.hf_tokenizer
    short = [tokens.token_to_id(t) for t in ("<|startoftranscript|>", "<|notimestamps|>")]
    long = [tokens.token_to_id("<|startofprev|>"), *range(220, 240), *short]
    for prompt, max_length in ((short, 20), (short, 40), (long, 40), (long, 30)):
        (result,) = batcher.inner.generate(encoded, [prompt], beam_size=1, max_length=max_length)
        assert len(result.sequences_ids[0]) == length_limit(len(prompt), max_length), (len(prompt), max_length)
