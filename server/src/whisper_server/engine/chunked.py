"""Long audio in chunks: faster-whisper's BatchedInferencePipeline, plus Whisper's temperature
fallback (which the pipeline leaves out), bounded so that it cannot take the pipeline's speed away.

Importing this imports faster-whisper (its pipeline is subclassed here), so whisper.py imports it only
when long audio needs it.
"""

from __future__ import annotations

import math

from faster_whisper import BatchedInferencePipeline
from faster_whisper.transcribe import Segment, Word

from whisper_server.engine.fallback import fails, length_limit, loops, text_tokens

# At most this share of a request's chunks (and at least one) is decoded again at a higher temperature
# for being unlikely (a chunk that loops always is): on audio the model reads badly throughout, every
# chunk fails that test, and the fallback, five more decodes of up to five samples each, would multiply
# the request's time.
FALLBACK_SHARE = 0.25


def fallback_share(chunks: int) -> int:
    return max(1, math.floor(chunks * FALLBACK_SHARE))


class ChunkPipeline(BatchedInferencePipeline):
    """BatchedInferencePipeline, plus Whisper's temperature fallback for each chunk: a chunk that fails
    the test at temperature 0 is decoded again by sampling at the next temperature (best of
    `best_of`), as WhisperModel.transcribe does; if none passes, the most likely text that does not
    loop is kept. The test is fallback.fails: Whisper's, with the compression ratio heeded only where
    a decode loops. A chunk that loops always falls back; of those that are only unlikely, at most
    FALLBACK_SHARE of the request's chunks.

    Each chunk is decoded without the text before it, as the pipeline does. Carrying it (a run of
    consecutive chunks decoded in order, each prompted with the one before, the runs side by side) was
    tried and measured worse: 0.199 to 0.216 WER against 0.155 on 346 s of dictation, 0.110 against
    0.000 on jfk.flac alternating with a note. Decoded without timestamps, a prompted chunk skipped or
    repeated words at its start.

    One per request: it keeps the request's fallbacks left."""

    fallback: tuple[float, ...] = ()

    def __init__(self, model):
        super().__init__(model)
        self._fallbacks_left = 0
        self._temperatures: list[float] = []  # what each chunk of the last model call ended at

    def transcribe(self, audio, *args, temperature=0.0, **kwargs):
        temperatures = tuple(temperature) if isinstance(temperature, (list, tuple)) else (temperature,)
        self.fallback = temperatures[1:]
        return super().transcribe(audio, *args, temperature=temperature, **kwargs)

    def _batched_segments_generator(self, features, tokenizer, chunks_metadata, batch_size, options, log_progress):
        """The pipeline's order, with each segment's real temperature."""
        self._fallbacks_left = fallback_share(len(features))
        number = 0
        for start in range(0, len(features), batch_size):
            chosen = slice(start, start + batch_size)
            outputs = self.forward(features[chosen], tokenizer, chunks_metadata[chosen], options)
            for segments, temperature in zip(outputs, self._temperatures):
                for segment in segments:
                    number += 1
                    yield _segment(segment, number, temperature, options.word_timestamps)
        self.last_speech_timestamp = 0.0

    def generate_segment_batched(self, features, tokenizer, options):
        previous = tokenizer.encode(options.initial_prompt) if options.initial_prompt else []
        prompt = self.model.get_prompt(
            tokenizer,
            previous_tokens=previous,
            without_timestamps=options.without_timestamps,
            hotwords=options.hotwords,
        )
        prompts = [list(prompt) for _ in range(features.shape[0])]
        max_length = self.model.max_length
        if options.max_new_tokens is not None:
            max_length = min(max_length, len(prompts[0]) + options.max_new_tokens)
        encoder_output = self.model.encode(features)
        if options.multilingual:
            # Each chunk in the language the model hears in it.
            where = prompts[0].index(tokenizer.language)
            for prompt, found in zip(prompts, self.model.model.detect_language(encoder_output)):
                prompt[where] = tokenizer.tokenizer.token_to_id(found[0][0])
        outputs = self._decode(encoder_output, prompts, max_length, tokenizer, options, options.temperatures[0])
        tried = [[o] for o in outputs]
        granted: set[int] = set()
        for n, temperature in enumerate(self.fallback):
            failing = [i for i, o in enumerate(outputs) if self._fails(o, tokenizer, options)]
            if n == 0:  # a chunk that loops always falls back; any other takes one from the request's share
                unlikely = [i for i in failing if not outputs[i]["loops"]]
                granted = {i for i in failing if outputs[i]["loops"]} | set(unlikely[: self._fallbacks_left])
                self._fallbacks_left -= min(len(unlikely), self._fallbacks_left)
            failing = [i for i in failing if i in granted]
            if not failing:
                break
            resampled = self._decode(
                self.model.encode(features[failing]),
                [prompts[i] for i in failing],
                max_length,
                tokenizer,
                options,
                temperature,
            )
            for i, output in zip(failing, resampled):
                outputs[i] = output
                tried[i].append(output)
        for i, output in enumerate(outputs):
            if len(tried[i]) > 1 and self._fails(output, tokenizer, options):
                readable = [o for o in tried[i] if not o["loops"]]
                outputs[i] = max(readable or tried[i], key=lambda o: o["avg_logprob"])
        self._temperatures = [o["temperature"] for o in outputs]
        return encoder_output, outputs

    def _decode(self, encoder_output, prompts, max_length, tokenizer, options, temperature) -> list[dict]:
        """One model call at one temperature: beam search at 0, else sampling (best of `best_of`), as
        WhisperModel.generate_with_fallback decodes."""
        if temperature > 0:
            search = dict(beam_size=1, num_hypotheses=options.best_of, sampling_topk=0)
        else:
            search = dict(beam_size=options.beam_size, patience=options.patience)
        results = self.model.model.generate(
            encoder_output,
            prompts,
            length_penalty=options.length_penalty,
            max_length=max_length,
            suppress_blank=options.suppress_blank,
            suppress_tokens=options.suppress_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            sampling_temperature=temperature,
            **search,
        )
        outputs = []
        for prompt, result in zip(prompts, results):
            tokens = result.sequences_ids[0]
            score = result.scores[0] * (len(tokens) ** options.length_penalty)
            outputs.append(
                dict(
                    avg_logprob=score / (len(tokens) + 1),
                    no_speech_prob=result.no_speech_prob,
                    tokens=tokens,
                    loops=loops(text_tokens(tokens, tokenizer), len(tokens) >= length_limit(len(prompt), max_length)),
                    temperature=temperature,
                )
            )
        return outputs

    @staticmethod
    def _fails(output: dict, tokenizer, options) -> bool:
        return fails(
            output["tokens"], output["avg_logprob"], output["no_speech_prob"], output["loops"], tokenizer, options
        )


def _segment(segment: dict, number: int, temperature: float, word_timestamps: bool) -> Segment:
    return Segment(
        seek=segment["seek"],
        id=number,
        text=segment["text"],
        start=round(segment["start"], 3),
        end=round(segment["end"], 3),
        words=[Word(**word) for word in segment["words"]] if word_timestamps else None,
        tokens=segment["tokens"],
        avg_logprob=segment["avg_logprob"],
        no_speech_prob=segment["no_speech_prob"],
        compression_ratio=segment["compression_ratio"],
        temperature=temperature,
    )
