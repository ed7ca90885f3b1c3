"""The temperature fallback's test (fallback.py) and the long-audio pipeline's share of fallbacks
(chunked.py), on stand-ins: a tokenizer of numbered words and a model that loops on request."""

from __future__ import annotations

from dataclasses import make_dataclass

import numpy as np
import pytest

from whisper_server.engine import chunked
from whisper_server.engine.fallback import LOOP_REPEATS, LoopAwareWhisperModel, fails, length_limit, loops

EOT = 50000


class Tokenizer:
    eot = EOT

    def decode(self, tokens):
        return " ".join(f"w{t}" for t in tokens if t < EOT)


def options(**changes):
    base = dict(
        compression_ratio_threshold=2.4,
        log_prob_threshold=-1.0,
        no_speech_threshold=0.6,
        temperatures=[0.0],
        beam_size=5,
        best_of=5,
        patience=1,
        length_penalty=1,
        max_new_tokens=None,
        multilingual=False,
        initial_prompt=None,
        without_timestamps=True,
        hotwords=None,
        suppress_blank=True,
        suppress_tokens=[-1],
        repetition_penalty=1,
        no_repeat_ngram_size=0,
        word_timestamps=False,
    )
    values = {**base, **changes}
    return make_dataclass("Options", list(values))(**values)  # a dataclass, as faster-whisper's options are


SENTENCE_A = list(range(100, 114))  # two sentences that alternate, as speech that repeats itself does
SENTENCE_B = list(range(200, 211))


def test_a_unit_repeated_in_a_row_loops_and_speech_said_twice_does_not():
    assert loops([7] * 120, False)
    assert loops(SENTENCE_A[:3] + SENTENCE_B * LOOP_REPEATS, False)
    assert not loops(SENTENCE_B * (LOOP_REPEATS - 1), False)
    assert not loops((SENTENCE_A + SENTENCE_B) * 3 + SENTENCE_A, False)
    assert loops(SENTENCE_A, True), "a decode that ran to the length limit loops"
    assert not loops([], False)


def test_repetitive_speech_passes_where_a_loop_of_the_same_ratio_fails():
    tokenizer, opts = Tokenizer(), options()
    alternating = (SENTENCE_A + SENTENCE_B) * 3
    looping = SENTENCE_A[:2] * 40
    from faster_whisper.transcribe import get_compression_ratio as ratio

    assert ratio(tokenizer.decode(alternating)) > 2.4 and ratio(tokenizer.decode(looping)) > 2.4
    assert not fails(alternating, -0.1, 0.1, loops(alternating, False), tokenizer, opts)
    assert fails(looping, -0.1, 0.1, loops(looping, False), tokenizer, opts)
    # Whisper's other test is unchanged: unlikely text fails, unless the window is silence.
    assert fails(SENTENCE_A, -1.5, 0.1, False, tokenizer, opts)
    assert not fails(SENTENCE_A, -1.5, 0.9, False, tokenizer, opts)
    assert not fails(looping, -0.1, 0.1, loops(looping, False), tokenizer, options(compression_ratio_threshold=None))


class Result:
    def __init__(self, tokens, score):
        self.sequences_ids = [tokens]
        self.scores = [score]
        self.no_speech_prob = 0.0


class Generator:
    """CTranslate2's generate: chunk i (its features hold i) decodes as `greedy[i]` at temperature 0
    and as a sentence when sampled. Records the chunks of each call and its temperature."""

    def __init__(self, greedy):
        self.greedy = greedy
        self.calls: list[tuple[list[int], float]] = []
        self.settings: list[dict] = []

    def generate(self, encoded, prompts, **kwargs):
        chunks = [int(row[0, 0]) for row in np.asarray(encoded)]
        temperature = kwargs.get("sampling_temperature", 0.0)
        self.calls.append((chunks, temperature))
        self.settings.append(kwargs)
        if temperature == 0:
            return [
                Result(*self.greedy[i]) if isinstance(self.greedy[i], tuple) else Result(self.greedy[i], -0.1)
                for i in chunks
            ]
        return [Result(SENTENCE_B, -0.3) for _ in chunks]


class Whisper:
    max_length = 448

    def __init__(self, generator):
        self.model = generator

    def get_prompt(self, tokenizer, previous_tokens, without_timestamps, hotwords):
        return [1, 2, 3]

    def encode(self, features):
        return features


def pipeline(greedy, fallbacks_left):
    made = chunked.ChunkPipeline(Whisper(Generator(greedy)))
    made.fallback = (0.2, 0.4)
    made._fallbacks_left = fallbacks_left
    return made


def features(chunks):
    array = np.zeros((len(chunks), 2, 2), dtype=np.float32)
    array[:, 0, 0] = chunks
    return array


def test_repetitive_speech_is_not_resampled_and_a_loop_is():
    greedy = {0: (SENTENCE_A + SENTENCE_B) * 3, 1: [7] * 120}
    made = pipeline(greedy, fallbacks_left=5)
    _, outputs = made.generate_segment_batched(features([0, 1]), Tokenizer(), options())
    assert made.model.model.calls == [([0, 1], 0.0), ([1], 0.2)]
    assert outputs[0]["tokens"] == greedy[0] and outputs[1]["tokens"] == SENTENCE_B
    assert made._temperatures == [0.0, 0.2]


def test_at_most_the_requests_share_of_unlikely_chunks_falls_back_and_every_loop_does():
    """Audio the model reads badly throughout: every chunk is unlikely (log-probability under -1)."""
    greedy = {i: (SENTENCE_A, -1.5) for i in range(8)}
    greedy[6] = [7] * 120
    made = pipeline(greedy, fallbacks_left=2)
    _, first = made.generate_segment_batched(features([0, 1, 2, 3]), Tokenizer(), options())
    _, second = made.generate_segment_batched(features([4, 5, 6, 7]), Tokenizer(), options())
    sampled = [chunks for chunks, temperature in made.model.model.calls if temperature == 0.2]
    assert sampled == [[0, 1], [6]], "the first two unlikely chunks took the request's two; the loop needs none"
    assert made._fallbacks_left == 0
    assert [o["tokens"] for o in first[2:] + second[:2] + second[3:]] == [SENTENCE_A] * 5, "the rest keep theirs"


def test_a_chunk_that_never_passes_keeps_its_best_text_that_does_not_loop():
    greedy = {0: [7] * 120}

    class StillLooping(Generator):
        def generate(self, encoded, prompts, **kwargs):
            results = super().generate(encoded, prompts, **kwargs)
            temperature = kwargs.get("sampling_temperature", 0.0)
            return [Result([9] * 100, -0.2) if temperature == 0.2 else r for r in results]

    made = chunked.ChunkPipeline(Whisper(StillLooping(greedy)))
    made.fallback, made._fallbacks_left = (0.2, 0.4), 1
    _, outputs = made.generate_segment_batched(features([0]), Tokenizer(), options(log_prob_threshold=-0.05))
    # All three fail (each under the floor of -0.05); the sentence at 0.4 is the one that does not loop.
    assert outputs[0]["tokens"] == SENTENCE_B and made._temperatures == [0.4]


@pytest.mark.parametrize("chunks, share", [(1, 1), (4, 1), (8, 2), (40, 10)])
def test_the_share_is_a_quarter_of_the_chunks_and_at_least_one(chunks, share):
    assert chunked.fallback_share(chunks) == share


def test_the_length_limit_is_what_ctranslate2_decodes_after_a_prompt():
    """Half of max_length, and no more than fits after the prompt (measured with tiny.en: a 2-token prompt
    and max_length 20 gave 10 tokens, 23 and 40 gave 18; the model test checks it on the real model)."""
    assert (length_limit(2, 20), length_limit(23, 40), length_limit(3, 448), length_limit(300, 448)) == (
        10,
        18,
        224,
        149,
    )


def test_a_decode_that_runs_to_the_limit_loops_without_repeating_itself():
    """A loop that varies (no unit five times in a row) still fills the length: that is a loop too."""
    tokenizer = Tokenizer()
    wandering = list(range(300, 524))  # 224 tokens after a 3-token prompt: the limit
    from faster_whisper.transcribe import get_compression_ratio

    assert get_compression_ratio(tokenizer.decode(wandering)) > 2.4 and not loops(wandering, False)
    made = pipeline({0: wandering}, fallbacks_left=0)
    _, outputs = made.generate_segment_batched(features([0]), tokenizer, options())
    assert made.model.model.calls == [([0], 0.0), ([0], 0.2)], "a loop falls back whatever the share left"
    assert outputs[0]["tokens"] == SENTENCE_B


@pytest.mark.parametrize("beam_size", [1, 3, 5])
def test_a_clients_temperature_samples_best_of_as_whisper_does(beam_size):
    """temperature=0.3 from a client: sampled, best of 5, whatever the beam size (CTranslate2 refuses 5
    hypotheses from a beam of 3: that was a 500)."""
    made = pipeline({0: SENTENCE_A}, fallbacks_left=1)
    made.fallback = ()
    made.generate_segment_batched(features([0]), Tokenizer(), options(temperatures=[0.3], beam_size=beam_size))
    (settings,) = made.model.model.settings
    assert (settings["beam_size"], settings["num_hypotheses"], settings["sampling_temperature"]) == (1, 5, 0.3)
    assert settings["sampling_topk"] == 0


class Decoded:
    def __init__(self, tokens, no_speech_prob=0.1):
        self.sequences_ids = [tokens]
        self.no_speech_prob = no_speech_prob


def test_window_after_window_stops_at_the_first_temperature_that_passes_its_test(monkeypatch):
    """Greedy text too unlikely; sampled at 0.2, speech that repeats itself (it compresses over 2.4 but
    does not loop): kept at 0.2. faster-whisper's own loop, given the rest of the schedule, would have
    gone on sampling hotter, for a worse text."""
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import get_compression_ratio

    schedule = {
        0.0: (Decoded(SENTENCE_A), -1.5),
        0.2: (Decoded((SENTENCE_A + SENTENCE_B) * 3), -0.3),
        0.4: (Decoded(SENTENCE_B), -0.9),
    }
    asked: list[list[float]] = []

    def whispers_own(self, encoder_output, prompt, tokenizer, options):
        asked.append(list(options.temperatures))
        for temperature in options.temperatures:  # its test: ratio over 2.4 or log-probability under -1
            result, logprob = schedule.get(temperature, schedule[0.4])
            ratio = get_compression_ratio(tokenizer.decode(result.sequences_ids[0]))
            if ratio <= 2.4 and logprob >= -1:
                break
        return result, logprob, temperature, ratio

    monkeypatch.setattr(WhisperModel, "generate_with_fallback", whispers_own)
    model = LoopAwareWhisperModel.__new__(LoopAwareWhisperModel)
    model.max_length = 448
    opts = options(temperatures=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    result, logprob, temperature, _ = model.generate_with_fallback(None, [1, 2, 3], Tokenizer(), opts)
    assert (temperature, logprob, asked) == (0.2, -0.3, [[0.0], [0.2]])
    assert result.sequences_ids[0] == (SENTENCE_A + SENTENCE_B) * 3
