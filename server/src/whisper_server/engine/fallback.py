"""Whisper's temperature fallback for batched inference, which faster-whisper leaves out.

Importing this imports faster-whisper (its pipeline is subclassed here), so whisper.py imports it only
when long audio needs it.
"""

from __future__ import annotations

from faster_whisper import BatchedInferencePipeline
from faster_whisper.transcribe import get_compression_ratio


def _repetitive(output: dict, tokenizer, options) -> bool:
    limit = options.compression_ratio_threshold
    return limit is not None and get_compression_ratio(tokenizer.decode(output["tokens"]).strip()) > limit


def _needs_fallback(output: dict, tokenizer, options) -> bool:
    """Whisper's test of a decoded window: too repetitive or too unlikely, unless it is silence."""
    floor = options.log_prob_threshold
    repetitive = _repetitive(output, tokenizer, options)
    unlikely = floor is not None and output["avg_logprob"] < floor
    silence = options.no_speech_threshold is not None and output["no_speech_prob"] > options.no_speech_threshold
    return (repetitive or unlikely) and not (silence and unlikely)


class FallbackPipeline(BatchedInferencePipeline):
    """faster-whisper's BatchedInferencePipeline, plus Whisper's temperature fallback for each chunk,
    which the library leaves out: a chunk whose text fails the test at temperature 0 is decoded again
    by sampling at the next temperature (best of `best_of`), as WhisperModel.transcribe does; if none
    passes, the most likely text that is not too repetitive is kept."""

    # The pipeline keeps only the first of the temperatures it is given: the rest are kept here.
    fallback: tuple[float, ...] = ()

    def transcribe(self, audio, *args, temperature=0.0, **kwargs):
        temperatures = tuple(temperature) if isinstance(temperature, (list, tuple)) else (temperature,)
        self.fallback = temperatures[1:]
        return super().transcribe(audio, *args, temperature=temperature, **kwargs)

    def generate_segment_batched(self, features, tokenizer, options):
        encoder_output, outputs = super().generate_segment_batched(features, tokenizer, options)
        if options.multilingual or not self.fallback:
            return encoder_output, outputs
        tried = [[output] for output in outputs]
        for temperature in self.fallback:
            failing = [i for i, output in enumerate(outputs) if _needs_fallback(output, tokenizer, options)]
            if not failing:
                break
            prompt = self.model.get_prompt(
                tokenizer,
                previous_tokens=tokenizer.encode(options.initial_prompt) if options.initial_prompt else [],
                without_timestamps=options.without_timestamps,
                hotwords=options.hotwords,
            )
            max_length = self.model.max_length
            if options.max_new_tokens is not None:
                max_length = min(max_length, len(prompt) + options.max_new_tokens)
            results = self.model.model.generate(
                self.model.encode(features[failing]),
                [prompt] * len(failing),
                beam_size=1,
                num_hypotheses=options.best_of,
                sampling_topk=0,
                sampling_temperature=temperature,
                length_penalty=options.length_penalty,
                repetition_penalty=options.repetition_penalty,
                no_repeat_ngram_size=options.no_repeat_ngram_size,
                max_length=max_length,
                suppress_blank=options.suppress_blank,
                suppress_tokens=options.suppress_tokens,
                return_scores=True,
                return_no_speech_prob=True,
            )
            for i, result in zip(failing, results):
                tokens = result.sequences_ids[0]
                score = result.scores[0] * (len(tokens) ** options.length_penalty)
                outputs[i] = dict(
                    avg_logprob=score / (len(tokens) + 1),
                    no_speech_prob=result.no_speech_prob,
                    tokens=tokens,
                )
                tried[i].append(outputs[i])
        for i, output in enumerate(outputs):
            if len(tried[i]) > 1 and _needs_fallback(output, tokenizer, options):
                readable = [o for o in tried[i] if not _repetitive(o, tokenizer, options)]
                outputs[i] = max(readable or tried[i], key=lambda o: o["avg_logprob"])
        return encoder_output, outputs
