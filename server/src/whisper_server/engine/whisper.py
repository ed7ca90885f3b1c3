"""WhisperEngine: faster-whisper behind the Engine interface, its model calls on a shared Batcher."""

from __future__ import annotations

import math
import time
from typing import Callable, Iterator

import numpy as np

from whisper_server.engine.batcher import Batcher, _checked
from whisper_server.engine.types import SAMPLE_RATE, Info, Options, Segment, to_words

# Whisper's own fallback schedule, used when the client asks for temperature 0 (OpenAI's default):
# decode greedily, and raise the temperature only when the result looks like a failure.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


RANDOM_SEED = 20261124

# One Whisper window, in samples: audio past it goes through batched inference.
WINDOW_SAMPLES = 30 * SAMPLE_RATE


class WhisperEngine:
    """faster-whisper behind the Engine interface, on a Batcher shared by all requests.

    Audio up to `sequential_seconds` (at least one window: a voice note) is decoded window after window
    by WhisperModel.transcribe, each window prompted with the text before it, with Whisper's
    temperature fallback (LoopAwareWhisperModel's test). Longer audio is cut at pauses by VAD into
    chunks of up to one window, decoded side by side by ChunkPipeline. Either way the model calls of
    concurrent requests are batched together by the Batcher."""

    def __init__(
        self, model, *, beam_size: int, vad: bool, batch_size: int, streams: int = 1, sequential_seconds: float = 30.0
    ):
        if not isinstance(model.model, Batcher):
            sot = model.hf_tokenizer.token_to_id("<|startoftranscript|>") if hasattr(model, "hf_tokenizer") else None
            model.model = Batcher(model.model, max_windows=batch_size, sot=sot, streams=streams)
        self._model = model
        self._beam_size = beam_size
        self._vad = vad
        self._batch_size = batch_size
        # Audio up to this long is decoded window after window, as one note is, even past one window.
        self._sequential_samples = max(WINDOW_SAMPLES, int(sequential_seconds * SAMPLE_RATE))
        self.multilingual = bool(model.model.is_multilingual)

    @property
    def calls_by_windows(self) -> dict[int, int]:
        return self._model.model.calls_by_windows

    def transcribe(
        self, audio: np.ndarray, options: Options, check: Callable[[], None] = lambda: None
    ) -> tuple[Iterator[Segment], Info]:
        temperature = FALLBACK_TEMPERATURES if options.temperature == 0 else (options.temperature,)
        kwargs = dict(
            language=options.language,
            task=options.task,
            beam_size=self._beam_size,
            temperature=list(temperature),
            initial_prompt=options.prompt or None,
            word_timestamps=options.word_timestamps,
            vad_filter=self._vad,
            without_timestamps=not (options.timestamps or options.word_timestamps),
        )
        if self._batch_size > 1 and audio.shape[0] > self._sequential_samples:
            # One pipeline per request: it keeps state between calls (last_speech_timestamp), which
            # concurrent requests must not share. It is a thin wrapper; the model is shared.
            # Imported here: the pipeline's module imports faster-whisper, which importing the engine must not.
            from whisper_server.engine.chunked import ChunkPipeline

            pipeline = ChunkPipeline(model=self._model)
            if not self._vad:
                # Without VAD the pipeline needs the windows given; it refuses audio over 30 s otherwise.
                length = audio.shape[0] / SAMPLE_RATE
                starts = range(0, math.ceil(length), 30)
                kwargs["clip_timestamps"] = [{"start": float(s), "end": min(s + 30.0, length)} for s in starts]
            segments, info = pipeline.transcribe(audio, batch_size=self._batch_size, **kwargs)
        else:
            if options.context:
                kwargs["initial_prompt"] = " ".join(p for p in (options.prompt, options.context) if p)
            if audio.shape[0] > WINDOW_SAMPLES:
                # Past one window, decoded window after window (up to --sequential-seconds, or any length
                # with --batch-size 1): the timestamps are what tells Whisper where a window's last whole
                # segment ends, so the next window starts there. Without them every window is cut blindly
                # at 30 s and the previous one's text primes the next: long json answers repeated
                # themselves (WER 0.51 against 0.00 on bench step 10's jfk recording). json still shows
                # no times.
                kwargs["without_timestamps"] = False
            segments, info = self._model.transcribe(audio, **kwargs)
        return _checked(_as_segments(segments), check), Info(language=info.language, duration=float(info.duration))

    def unload(self, wait: float = 0.0) -> bool:
        """Frees the model's weights (RAM on a CPU, VRAM on a GPU); the tokenizer and settings stay.
        CTranslate2 skips the unload while a model call runs (one a departed client's request left in
        the batcher): it is asked again until `wait` seconds have passed. False if it never could."""
        inner = self._model.model.inner
        deadline = time.monotonic() + wait
        while True:
            inner.unload_model()
            if not inner.model_is_loaded:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def load(self) -> None:
        """Puts back what unload() freed, from the model's files, on the same device."""
        self._model.model.inner.load_model()

    def warm_up(self) -> None:
        """One real decode, VAD off so it cannot be skipped: the first request then pays no start-up
        cost, and a missing CUDA library shows now rather than on a user's voice note."""
        noise = (np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 0.01).astype(np.float32)
        segments, _ = self._model.transcribe(
            noise, language="en", beam_size=self._beam_size, vad_filter=False, without_timestamps=True
        )
        for _ in segments:
            pass


def _as_segments(segments) -> Iterator[Segment]:
    """faster-whisper's segments as ours, numbered from 0, as they are decoded."""
    for index, s in enumerate(segments):
        yield Segment(
            id=index,
            seek=int(s.seek),
            start=float(s.start),
            end=float(s.end),
            text=s.text,
            tokens=tuple(s.tokens),
            temperature=float(s.temperature or 0.0),
            avg_logprob=float(s.avg_logprob),
            compression_ratio=float(s.compression_ratio),
            no_speech_prob=float(s.no_speech_prob),
            words=to_words(s.words),
        )
