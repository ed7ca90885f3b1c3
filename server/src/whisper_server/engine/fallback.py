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


def fails(tokens, avg_logprob: float, no_speech_prob: float, looping: bool, tokenizer, options) -> bool:
    """Whisper's test of a decoded window, with the compression ratio heeded only where it loops
    (`looping`: loops() of the decode)."""
    limit = options.compression_ratio_threshold
    repetitive = limit is not None and looping and get_compression_ratio(tokenizer.decode(tokens).strip()) > limit
    floor = options.log_prob_threshold
    unlikely = floor is not None and avg_logprob < floor
    silence = options.no_speech_threshold is not None and no_speech_prob > options.no_speech_threshold
    return (repetitive or unlikely) and not (silence and unlikely)


def length_limit(prompt_length: int, max_length: int) -> int:
    """The most tokens CTranslate2's Whisper decodes after a prompt: half of max_length (as OpenAI's
    sample_len), and no more than fits after the prompt (its whisper.cc: min(max_length / 2,
    max_length - (prompt length - 1))). A decode with this many tokens ran to the limit."""
    return min(max_length // 2, max_length - prompt_length + 1)


class LoopAwareWhisperModel(WhisperModel):
    """WhisperModel, whose window-by-window decoding (transcribe) falls back by `fails`: each temperature
    is tried in turn (faster-whisper's own method, given that one temperature) until a decode passes.
    If none does, the one that does not loop is kept, else the more likely, as faster-whisper keeps
    the most likely of those under the compression threshold."""

    def generate_with_fallback(self, encoder_output, prompt, tokenizer, options):
        tried = []  # (decoded, whether it loops)
        for temperature in options.temperatures:
            decoded = super().generate_with_fallback(
                encoder_output, prompt, tokenizer, replace(options, temperatures=[temperature])
            )
            result, avg_logprob, _, _ = decoded
            looping = self._loops(result.sequences_ids[0], prompt, tokenizer, options)
            if not fails(result.sequences_ids[0], avg_logprob, result.no_speech_prob, looping, tokenizer, options):
                return decoded
            tried.append((decoded, looping))
        readable = [d for d, looping in tried if not looping]
        best = max(readable or [d for d, _ in tried], key=lambda d: d[1])
        # The last temperature tried, as faster-whisper reports it, for its prompt reset.
        return best[0], best[1], tried[-1][0][2], best[3]

    def _loops(self, tokens, prompt, tokenizer, options) -> bool:
        max_length = self.max_length if options.max_new_tokens is None else len(prompt) + options.max_new_tokens
        return loops(text_tokens(tokens, tokenizer), len(tokens) >= length_limit(len(prompt), max_length))
