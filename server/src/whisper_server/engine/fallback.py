"""Whisper's temperature fallback, with its compression test kept for decodes that loop.

Whisper decodes a window again by sampling, hotter each time, when the text at temperature 0 looks
like a failure: too repetitive (a compression ratio over 2.4) or too unlikely (an average
log-probability under -1). Speech that repeats itself, a list read back or two sentences alternating,
compresses as well as a loop does, and every such window went to sampling: 3x the time and worse
text (bench step 10: "watch your country", a transcript of 0.35 WER against 0.00 greedy). Here the
compression ratio fails a decode only where it also loops; the log-probability test is Whisper's.

Importing this imports faster-whisper (WhisperModel is subclassed here).
"""

from __future__ import annotations

from dataclasses import replace

from faster_whisper import WhisperModel
from faster_whisper.transcribe import get_compression_ratio

# A decode loops when its text tokens end in one unit repeated this many times in a row, token for
# token, or when it ran to the length limit. A loop repeats a phrase until the limit; speech that
# repeats itself is rarely decoded identically five times within one 30 s window.
LOOP_REPEATS = 5


def loops(tokens: list[int], limit_reached: bool) -> bool:
    """`tokens`: the text tokens only (a loop's repeats differ in their timestamps)."""
    if limit_reached:
        return True
    n = len(tokens)
    for unit in range(1, n // LOOP_REPEATS + 1):
        tail = tokens[n - unit :]
        if all(tokens[n - unit * (k + 1) : n - unit * k] == tail for k in range(1, LOOP_REPEATS)):
            return True
    return False


def text_tokens(tokens, tokenizer) -> list[int]:
    return [t for t in tokens if t < tokenizer.eot]


def fails(tokens, avg_logprob: float, no_speech_prob: float, limit_reached: bool, tokenizer, options) -> bool:
    """Whisper's test of a decoded window, with the compression ratio heeded only where it loops."""
    limit = options.compression_ratio_threshold
    repetitive = (
        limit is not None
        and loops(text_tokens(tokens, tokenizer), limit_reached)
        and get_compression_ratio(tokenizer.decode(tokens).strip()) > limit
    )
    floor = options.log_prob_threshold
    unlikely = floor is not None and avg_logprob < floor
    silence = options.no_speech_threshold is not None and no_speech_prob > options.no_speech_threshold
    return (repetitive or unlikely) and not (silence and unlikely)


class LoopAwareWhisperModel(WhisperModel):
    """WhisperModel, whose window-by-window decoding (transcribe) falls back by `fails`: the window is
    decoded greedily (beam search) first; only if that fails is it given to faster-whisper's own
    fallback, from the next temperature on. Of the two, the one that passes is kept, else the one that
    does not loop, else the more likely."""

    def _limit(self, prompt, options) -> int:
        return self.max_length if options.max_new_tokens is None else len(prompt) + options.max_new_tokens

    def generate_with_fallback(self, encoder_output, prompt, tokenizer, options):
        first = super().generate_with_fallback(
            encoder_output, prompt, tokenizer, replace(options, temperatures=options.temperatures[:1])
        )
        if len(options.temperatures) < 2 or not self._fails(first, prompt, tokenizer, options):
            return first
        later = super().generate_with_fallback(
            encoder_output, prompt, tokenizer, replace(options, temperatures=options.temperatures[1:])
        )
        if not self._fails(later, prompt, tokenizer, options):
            return later
        first_loops, later_loops = (self._loops(d, prompt, tokenizer, options) for d in (first, later))
        if first_loops != later_loops:
            best = later if first_loops else first
        else:
            best = max(first, later, key=lambda d: d[1])
        # The last temperature tried, as faster-whisper reports it, for its prompt reset.
        return best[0], best[1], later[2], best[3]

    def _fails(self, decoded, prompt, tokenizer, options) -> bool:
        result, avg_logprob, _, _ = decoded
        tokens = result.sequences_ids[0]
        limit_reached = len(prompt) + len(tokens) >= self._limit(prompt, options)
        return fails(tokens, avg_logprob, result.no_speech_prob, limit_reached, tokenizer, options)

    def _loops(self, decoded, prompt, tokenizer, options) -> bool:
        tokens = decoded[0].sequences_ids[0]
        return loops(text_tokens(tokens, tokenizer), len(prompt) + len(tokens) >= self._limit(prompt, options))
