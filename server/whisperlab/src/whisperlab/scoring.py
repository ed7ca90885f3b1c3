"""Word error rate, word diffs and latency percentiles: the numbers a report is made of."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import jiwer

# Both sides alike: case, punctuation and spacing are not errors.
_WORDS = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)

# OpenAI's published prices, US dollars per minute of audio (openai.com/api/pricing; read 2026-11-30).
# The gpt-4o models are billed by token; OpenAI states these per-minute estimates for them.
OPENAI_PRICE_PER_MINUTE = {
    "whisper-1": 0.006,
    "gpt-4o-transcribe": 0.006,
    "gpt-4o-transcribe-diarize": 0.006,
    "gpt-4o-mini-transcribe": 0.003,
}


def words(text: str) -> list:
    return _WORDS(text or "")[0] if (text or "").strip() else []


def wer(reference: str, hypothesis: str) -> Optional[float]:
    """WER of hypothesis against reference; None when the reference has no words (undefined)."""
    if not words(reference):
        return None if words(hypothesis) else 0.0
    return float(jiwer.wer(reference, hypothesis, reference_transform=_WORDS, hypothesis_transform=_WORDS))


def corpus_wer(pairs: Sequence[tuple]) -> Optional[float]:
    """WER over all the (reference, hypothesis) pairs together, weighted by words, as jiwer counts it."""
    kept = [(r, h) for r, h in pairs if words(r)]
    if not kept:
        return None
    references, hypotheses = zip(*kept)
    return float(jiwer.wer(list(references), list(hypotheses), reference_transform=_WORDS, hypothesis_transform=_WORDS))


def word_diff(reference: str, hypothesis: str) -> str:
    """The words of both, with what B dropped as [-word-] and what it put instead as {+word+}."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref or not hyp:
        return " ".join([f"[-{w}-]" for w in ref] + [f"{{+{w}+}}" for w in hyp])
    out = jiwer.process_words(reference, hypothesis, reference_transform=_WORDS, hypothesis_transform=_WORDS)
    parts: list = []
    said: list = []
    heard: list = []

    def flush() -> None:
        # Neighbouring edits read as one change: "[-finance-] {+fine ants+}", not three.
        if said:
            parts.append("[-" + " ".join(said) + "-]")
        if heard:
            parts.append("{+" + " ".join(heard) + "+}")
        said.clear()
        heard.clear()

    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            flush()
            parts.append(" ".join(ref[chunk.ref_start_idx : chunk.ref_end_idx]))
        else:
            said.extend(ref[chunk.ref_start_idx : chunk.ref_end_idx])
            heard.extend(hyp[chunk.hyp_start_idx : chunk.hyp_end_idx])
    flush()
    return " ".join(parts)


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """The q-th percentile (0-100), interpolated between the nearest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def price_per_minute(model: str) -> Optional[float]:
    return OPENAI_PRICE_PER_MINUTE.get(model)
