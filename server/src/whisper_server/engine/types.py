"""The engine's vocabulary: what it is given (Options), what it yields (Segment, Word, Info), and the
interface a transcriber offers (Engine). No model here: the views, jobs and formatters need only this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Protocol

import numpy as np

SAMPLE_RATE = 16000

# How often a request that waits, for a worker (admission.py) or for its batch (batcher.py), checks
# that its client is still there, in seconds.
WAIT_POLL = 0.25


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


def to_words(words: Optional[Iterable], offset: float = 0.0) -> Optional[tuple[Word, ...]]:
    """Our Words from anything with start, end, word and probability (faster-whisper's words, or ours),
    moved `offset` seconds later. None, for a segment without word times, stays None."""
    if words is None:
        return None
    return tuple(Word(w.start + offset, w.end + offset, w.word, w.probability) for w in words)


@dataclass(frozen=True)
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: Optional[tuple[Word, ...]] = None


@dataclass(frozen=True)
class Info:
    language: str
    duration: float


@dataclass(frozen=True)
class Options:
    task: str = "transcribe"  # or "translate"
    language: Optional[str] = None
    prompt: Optional[str] = None
    temperature: float = 0.0
    word_timestamps: bool = False
    # Segment times are wanted (verbose_json, srt, vtt, a stream). Without them a window decodes as
    # one segment, with no timestamp tokens to generate.
    timestamps: bool = True
    # The end of the text so far, when this is a later piece of a long file. Decoded window after
    # window, it follows the prompt; batched chunks are decoded independently and leave it out.
    context: Optional[str] = None


class Engine(Protocol):
    multilingual: bool

    def transcribe(
        self, audio: np.ndarray, options: Options, check: Callable[[], None] = ...
    ) -> tuple[Iterator[Segment], Info]:
        """check() is called before each model call while the segments are drawn; it may raise to
        stop the work (a departed client)."""
        ...
