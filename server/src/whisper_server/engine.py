"""The engine: a narrow interface over faster-whisper, and the code that loads it.

transcribe(audio, options) -> (segments, info). Segments are produced lazily, so a streaming
response can send each one as it is decoded. Unit tests swap in a fake engine.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

import numpy as np

from whisper_server.config import Config, usable_cores

log = logging.getLogger("whisper_server")

SAMPLE_RATE = 16000

# The CUDA libraries CTranslate2 4.x opens at run time, and how a user gets them. cuDNN 9 opens its
# ops and cnn sub-libraries beside libcudnn.so.9 only when the encoder's convolutions first run.
CUDA_LIBRARIES = ("libcublas.so.12", "libcudnn.so.9", "libcudnn_ops.so.9", "libcudnn_cnn.so.9")
CUDA_FIX = (
    "install them with `pip install nvidia-cublas-cu12 'nvidia-cudnn-cu12==9.*'` in the server's "
    "virtualenv and put their lib folders on LD_LIBRARY_PATH before the server starts, e.g. "
    "LD_LIBRARY_PATH=$VENV/lib/python3.X/site-packages/nvidia/cublas/lib:"
    "$VENV/lib/python3.X/site-packages/nvidia/cudnn/lib"
)


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


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


# The check of the request whose segments this thread is drawing, if any (see Batcher).
_current = threading.local()

# How often a request waiting for its batch checks that its client is still there, in seconds.
BATCH_WAIT_POLL = 0.25


def _poll() -> None:
    check = getattr(_current, "check", None)
    if check is not None:
        check()


class Deferred:
    """What Batcher.encode() returns: the features, to be encoded together with other requests' windows
    when generate() is called. Anything else that needs the encoder output gets it on demand."""

    def __init__(self, batcher: Batcher, features: np.ndarray, to_cpu: bool):
        self.features = features  # [windows, mels, frames], float32, on the CPU
        self._batcher = batcher
        self._to_cpu = to_cpu
        self.encoded: Optional[np.ndarray] = None  # this call's part of a batch's encoder output (CPU only)
        self._real = None

    def materialize(self):
        if self._real is None:
            import ctranslate2

            if self.encoded is not None:
                self._real = ctranslate2.StorageView.from_array(np.ascontiguousarray(self.encoded))
            else:
                features = ctranslate2.StorageView.from_array(self.features)
                self._real = self._batcher.inner.encode(features, to_cpu=self._to_cpu)
        return self._real


class _Call:
    """One generate() call waiting for the batcher: its windows, prompts and settings."""

    def __init__(self, deferred: Deferred, prompts: list, kwargs: dict, key: tuple):
        self.deferred = deferred
        self.prompts = prompts
        self.kwargs = kwargs
        self.key = key
        self.windows = deferred.features.shape[0]
        self.done = threading.Event()
        self.results: Optional[list] = None
        self.error: Optional[BaseException] = None


def _hashable(value):
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


class Batcher:
    """CTranslate2's Whisper, shared by every request, decoding windows of several requests together.

    faster-whisper runs each request in its own thread, unchanged: its options, its temperature
    fallback, its segments and words. Only the model calls meet here. encode() defers the work and
    generate() queues the windows; each of `streams` threads takes the oldest call and everything
    queued that can share its model call (the same decoding settings and prompt layout, which
    CTranslate2 requires of a batch), up to `max_windows`, encodes it (see _encode) and decodes it
    in one generate call. Nothing waits for company: a lone window runs at once, and windows that
    arrive meanwhile join the batch being encoded or form the next one.

    It also asks the running request before each model call whether its client is still there
    (check(), set per thread while segments are drawn); one window can take several calls, as the
    fallback decodes it up to six times."""

    def __init__(self, inner, *, max_windows: int, sot: Optional[int] = None, streams: int = 1):
        self.inner = inner
        self.max_windows = max(1, max_windows)
        self._sot = sot
        self._queue: list[_Call] = []
        self._lock = threading.Condition()
        # Model calls by how many windows they decoded, for /metrics.
        self.calls_by_windows: dict[int, int] = {}
        self._cpu = getattr(inner, "device", "cpu") == "cpu"
        # On a CPU one window is encoded at a time, whichever stream asks: the encoder's attention
        # takes ~50 MiB (tiny) per window while it runs, and streams gain by overlapping one
        # stream's encoding with another's decoding, not two encodings.
        self._encoding = threading.Lock()
        # One thread per model worker (CTranslate2's inter_threads): each takes its own batches, so
        # one batch is encoded while another is decoded.
        for n in range(max(1, streams)):
            threading.Thread(target=self._loop, name=f"whisper-batcher-{n}", daemon=True).start()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    # The model's methods that faster-whisper calls.

    def encode(self, features, to_cpu: bool = False):
        _poll()
        # A copy: the caller's buffer is not ours to keep.
        array = np.array(np.asarray(features), dtype=np.float32, copy=True, order="C")
        return Deferred(self, array if array.ndim == 3 else array[None], to_cpu)

    def generate(self, features, prompts, **kwargs):
        _poll()
        if not isinstance(features, Deferred):
            return self.inner.generate(features, prompts, **kwargs)
        call = _Call(features, [list(p) for p in prompts], kwargs, self._key(prompts, kwargs))
        with self._lock:
            self._queue.append(call)
            self._lock.notify()
        try:
            while not call.done.wait(BATCH_WAIT_POLL):
                _poll()
        except BaseException:
            with self._lock:
                if call in self._queue:
                    self._queue.remove(call)
            raise
        if call.error is not None:
            raise call.error
        return call.results

    def detect_language(self, features, *args, **kwargs):
        _poll()
        return self.inner.detect_language(_real(features), *args, **kwargs)

    def align(self, features, *args, **kwargs):
        _poll()
        return self.inner.align(_real(features), *args, **kwargs)

    # The batching thread.

    def _key(self, prompts, kwargs) -> tuple:
        """Calls may share a batch when their settings match and their prompts have the same length
        and <|startoftranscript|> position (CTranslate2 refuses a batch otherwise)."""
        layouts = {(len(p), p.index(self._sot) if self._sot in p else -1) for p in prompts}
        return (_hashable(kwargs), tuple(sorted(layouts)))

    def _take(self) -> list[_Call]:
        """Waits for a call; returns the oldest, and every queued call that can share its model call."""
        with self._lock:
            while not self._queue:
                self._lock.wait()
            first = self._queue.pop(0)
        return [first] + self._joining(first, self.max_windows - first.windows)

    def _joining(self, first: _Call, room: int) -> list[_Call]:
        """Queued calls that can join `first`'s model call, oldest first, within `room` windows."""
        taken: list[_Call] = []
        if len(first.key[1]) != 1:  # a call whose own prompts differ in layout runs alone
            return taken
        with self._lock:
            for call in list(self._queue):
                if call.key != first.key:
                    continue
                if call.windows > room:
                    break
                taken.append(call)
                room -= call.windows
                self._queue.remove(call)
        return taken

    def _loop(self) -> None:
        while True:
            calls = self._take()
            try:
                self._decode(calls, self._encode(calls, gather=True))
            except BaseException as exc:  # a batch that fails together is retried call by call
                if len(calls) == 1:
                    calls[0].error = exc
                else:
                    for call in calls:
                        try:
                            self._decode([call], self._encode([call], gather=False))
                        except BaseException as single:
                            call.error = single
            for call in calls:
                call.done.set()

    def _encode(self, calls: list[_Call], *, gather: bool):
        """The encoder output of every window of `calls`, as one StorageView.

        On a CPU the encoder gains nothing from a batch (one window is already a large matrix
        product), while its attention takes ~50 MiB more per window batched. So windows are encoded
        one at a time, and calls that arrive meanwhile join the batch (appended to `calls`): the
        decoder, which gains most from batching, then takes them all. On a GPU the batch is encoded
        at once."""
        import ctranslate2

        if not self._cpu:
            parts = [c.deferred.features for c in calls]
            return ctranslate2.StorageView.from_array(np.concatenate(parts) if len(parts) > 1 else parts[0])
        outputs: list[np.ndarray] = []
        done = 0
        while done < len(calls):
            for call in calls[done:]:
                for i in range(call.windows):
                    window = ctranslate2.StorageView.from_array(call.deferred.features[i : i + 1])
                    with self._encoding:
                        outputs.append(np.asarray(self.inner.encode(window)))
            done = len(calls)
            if gather:
                calls.extend(self._joining(calls[0], self.max_windows - len(outputs)))
        return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]

    def _decode(self, calls: list[_Call], encoded) -> None:
        import ctranslate2

        prompts = [p for c in calls for p in c.prompts]
        if isinstance(encoded, np.ndarray):
            results = self.inner.generate(ctranslate2.StorageView.from_array(encoded), prompts, **calls[0].kwargs)
        else:  # GPU: the features, which generate() encodes in the same call
            results = self.inner.generate(encoded, prompts, **calls[0].kwargs)
        with self._lock:
            self.calls_by_windows[len(prompts)] = self.calls_by_windows.get(len(prompts), 0) + 1
        start = 0
        for call in calls:
            end = start + call.windows
            call.results = results[start:end]
            if isinstance(encoded, np.ndarray):
                call.deferred.encoded = encoded[start:end]
            start = end


def _real(features):
    return features.materialize() if isinstance(features, Deferred) else features


def _checked(segments: Iterator[Segment], check: Callable[[], None]) -> Iterator[Segment]:
    _current.check = check
    try:
        yield from segments
    finally:
        _current.check = None


class ModelLoadError(RuntimeError):
    """The model cannot be loaded or run; the message says why and what to do."""


# Whisper's own fallback schedule, used when the client asks for temperature 0 (OpenAI's default):
# decode greedily, and raise the temperature only when the result looks like a failure.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


RANDOM_SEED = 20261124

# One Whisper window, in samples: audio past it goes through batched inference.
WINDOW_SAMPLES = 30 * SAMPLE_RATE


class WhisperEngine:
    """faster-whisper behind the Engine interface, on a Batcher shared by all requests.

    Audio of one window or less (a voice note) is decoded by WhisperModel.transcribe: timestamped
    segments and Whisper's temperature fallback. Longer audio is cut at pauses by VAD into chunks of
    up to one window, decoded as a batch by BatchedInferencePipeline. Either way the model calls of
    concurrent requests are batched together by the Batcher."""

    def __init__(self, model, *, beam_size: int, vad: bool, batch_size: int, streams: int = 1):
        if not isinstance(model.model, Batcher):
            sot = model.hf_tokenizer.token_to_id("<|startoftranscript|>") if hasattr(model, "hf_tokenizer") else None
            model.model = Batcher(model.model, max_windows=batch_size, sot=sot, streams=streams)
        self._model = model
        self._beam_size = beam_size
        self._vad = vad
        self._batch_size = batch_size
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
        if self._batch_size > 1 and audio.shape[0] > WINDOW_SAMPLES:
            # One pipeline per request: it keeps state between calls (last_speech_timestamp), which
            # concurrent requests must not share. It is a thin wrapper; the model is shared.
            pipeline = _fallback_pipeline()(model=self._model)
            if not self._vad:
                # Without VAD the pipeline needs the windows given; it refuses audio over 30 s otherwise.
                length = audio.shape[0] / SAMPLE_RATE
                starts = range(0, math.ceil(length), 30)
                kwargs["clip_timestamps"] = [{"start": float(s), "end": min(s + 30.0, length)} for s in starts]
            segments, info = pipeline.transcribe(audio, batch_size=self._batch_size, **kwargs)
        else:
            if options.context:
                kwargs["initial_prompt"] = " ".join(p for p in (options.prompt, options.context) if p)
            segments, info = self._model.transcribe(audio, **kwargs)
        return _checked(_convert(segments), check), Info(language=info.language, duration=float(info.duration))

    def warm_up(self) -> None:
        """One real decode, VAD off so it cannot be skipped: the first request then pays no start-up
        cost, and a missing CUDA library shows now rather than on a user's voice note."""
        noise = (np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 0.01).astype(np.float32)
        segments, _ = self._model.transcribe(
            noise, language="en", beam_size=self._beam_size, vad_filter=False, without_timestamps=True
        )
        for _ in segments:
            pass


def _repetitive(output: dict, tokenizer, options) -> bool:
    from faster_whisper.transcribe import get_compression_ratio

    limit = options.compression_ratio_threshold
    return limit is not None and get_compression_ratio(tokenizer.decode(output["tokens"]).strip()) > limit


def _needs_fallback(output: dict, tokenizer, options) -> bool:
    """Whisper's test of a decoded window: too repetitive or too unlikely, unless it is silence."""
    floor = options.log_prob_threshold
    repetitive = _repetitive(output, tokenizer, options)
    unlikely = floor is not None and output["avg_logprob"] < floor
    silence = options.no_speech_threshold is not None and output["no_speech_prob"] > options.no_speech_threshold
    return (repetitive or unlikely) and not (silence and unlikely)


@cache
def _fallback_pipeline():
    """faster-whisper's BatchedInferencePipeline, plus Whisper's temperature fallback for each chunk,
    which the library leaves out: a chunk whose text fails the test at temperature 0 is decoded again
    by sampling at the next temperature (best of `best_of`), as WhisperModel.transcribe does; if none
    passes, the most likely text that is not too repetitive is kept."""
    from faster_whisper import BatchedInferencePipeline

    class FallbackPipeline(BatchedInferencePipeline):
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

    return FallbackPipeline


def _convert(segments) -> Iterator[Segment]:
    for index, s in enumerate(segments):
        words = None
        if s.words is not None:
            words = tuple(Word(w.start, w.end, w.word, w.probability) for w in s.words)
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
            words=words,
        )


@dataclass
class Probe:
    """What the loader asks of the machine; swapped in tests to play a GPU box."""

    cuda_device_count: Callable[[], int]
    can_load_library: Callable[[str], bool]
    # CTranslate2's own answer to "which compute types run fast here"; empty when it cannot say.
    supported_compute_types: Callable[[str], frozenset[str]] = lambda device: frozenset()


def _cuda_device_count() -> int:
    import ctranslate2

    try:
        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a broken driver must not stop a CPU start
        return 0


def _can_load_library(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def _supported_compute_types(device: str) -> frozenset[str]:
    import ctranslate2

    try:
        return frozenset(ctranslate2.get_supported_compute_types(device))
    except Exception:  # no driver, or a device CTranslate2 was not built for
        return frozenset()


SYSTEM_PROBE = Probe(_cuda_device_count, _can_load_library, _supported_compute_types)

# What `auto` picks, best first, among the types CTranslate2 says the device runs fast. On CUDA,
# float16 needs fast FP16 (compute capability 7.0 and up); a Pascal card offers int8 and float32, and
# asking it for float16 stops the load. On a CPU, int8 is the fastest that keeps Whisper's accuracy.
COMPUTE_PREFERENCE = {
    "cuda": ("float16", "int8_float16", "bfloat16", "int8", "int8_float32", "float32"),
    "cpu": ("int8", "int8_float32", "float32"),
}


@dataclass
class LoadedEngine:
    engine: Engine
    device: str
    compute_type: str
    gpu_name: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    batch_size: int = 1
    streams: int = 1


def choose_device(config: Config, probe: Probe) -> tuple[str, list[str]]:
    """Pick cpu or cuda. Raises ModelLoadError when cuda is demanded and cannot work."""
    warnings: list[str] = []
    if config.device == "cpu":
        return "cpu", warnings
    gpus = probe.cuda_device_count()
    if gpus == 0:
        if config.device == "cuda":
            raise ModelLoadError("--device cuda was asked for, but CTranslate2 sees no CUDA GPU")
        return "cpu", warnings
    missing = [lib for lib in CUDA_LIBRARIES if not probe.can_load_library(lib)]
    if missing:
        message = f"CUDA GPU found, but {', '.join(missing)} cannot be loaded: {CUDA_FIX}"
        if config.device == "cuda":
            raise ModelLoadError(message)
        warnings.append(message + ". Falling back to CPU.")
        return "cpu", warnings
    return "cuda", warnings


def resolve_compute_type(config: Config, device: str, probe: Optional[Probe] = None) -> str:
    """The compute type to load with: as configured, or for `auto` the best of what CTranslate2 says
    this device supports. A configured type the device does not support is refused with the list."""
    supported = (probe or SYSTEM_PROBE).supported_compute_types(device)
    wanted = config.compute_type
    if wanted in ("auto", "default"):
        if not supported:  # CTranslate2 cannot say: the old defaults
            return "float16" if device == "cuda" else "int8"
        return next(t for t in (*COMPUTE_PREFERENCE[device], *sorted(supported)) if t in supported)
    if supported and wanted not in supported:
        raise ModelLoadError(
            f"compute type {wanted} is not supported on this {device} device; CTranslate2 says it supports "
            f"{', '.join(sorted(supported))}. Set WHISPER_COMPUTE_TYPE=auto (or whisper_server_compute_type: auto) "
            "to pick the best of them"
        )
    return wanted


def resolve_batch_size(config: Config, device: str) -> int:
    """Windows per model call. A GPU gains far more from batching than a CPU. On a CPU the decoder's
    throughput stops growing at about 4 windows (measured: 2.38 windows/s at 4, 2.33 at 8) while its
    memory keeps growing (~+50 MiB at 4, ~+140 MiB at 8 with tiny.en)."""
    if config.batch_size:
        return config.batch_size
    return 16 if device == "cuda" else 4


def resolve_streams(config: Config, device: str) -> int:
    """Model calls run at once. On a CUDA GPU one: it gains from batching. On a CPU two or more, one
    per 4 cores past 8: Whisper's decoder uses several threads poorly, so two calls in parallel
    decode far more than one call with twice the threads, and one batch is encoded while another is
    decoded. Each call keeps --cpu-threads, so a lone request still gets them all. (Measured on this
    project's 2-core machine: 2 streams x 2 threads, 2.46 requests/s of 11 s clips; 2 x 1, 2.43;
    1 x 2, 2.21; a lone 5 s note took 0.60, 0.65 and 0.59 s.)"""
    if config.streams:
        return config.streams
    if device == "cuda":
        return 1
    cores = usable_cores()
    return 1 if cores < 2 else max(2, math.ceil(cores / 4))


def _gpu_name() -> Optional[str]:
    try:
        import subprocess

        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/lib/wsl/lib"},
        )
        return out.stdout.strip().splitlines()[0] or None
    except Exception:
        return None


def load_engine(config: Config, probe: Probe = SYSTEM_PROBE) -> LoadedEngine:
    """Load the model once and warm it up. Raises ModelLoadError with a message a user can act on."""
    device, warnings = choose_device(config, probe)
    for warning in warnings:
        log.warning(warning)
    try:
        return _load_on(config, device, warnings, probe)
    except ModelLoadError as exc:
        if device == "cuda" and config.device == "auto" and "libcu" in str(exc):
            warning = f"{exc}. Falling back to CPU."
            log.warning(warning)
            return _load_on(config, "cpu", warnings + [warning], probe)
        raise


def _load_on(config: Config, device: str, warnings: list[str], probe: Probe = SYSTEM_PROBE) -> LoadedEngine:
    import ctranslate2
    from faster_whisper import WhisperModel

    # The temperature fallback samples. Seeded, a restarted server given the same requests in the same
    # order answers the same: a transcript can be reproduced, and tests do not hang on luck.
    ctranslate2.set_random_seed(RANDOM_SEED)

    compute_type = resolve_compute_type(config, device, probe)
    batch_size = resolve_batch_size(config, device)
    streams = resolve_streams(config, device)
    source = config.model
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "model.bin").is_file():
            raise ModelLoadError(f"model folder {path} has no model.bin: is it a CTranslate2 Whisper model?")
        source = str(path)
    elif source.startswith(("/", "./", "../", "~")):
        raise ModelLoadError(f"model folder {source} does not exist")
    try:
        model = WhisperModel(
            source,
            device=device,
            compute_type=compute_type,
            # The Batcher makes the model calls, `streams` at once, each over every window that is ready.
            cpu_threads=config.cpu_threads,
            num_workers=streams,
            download_root=str(config.download_root) if config.download_root else None,
        )
        engine = WhisperEngine(
            model, beam_size=config.beam_size, vad=config.vad, batch_size=batch_size, streams=streams
        )
        engine.warm_up()
    except ModelLoadError:
        raise
    except Exception as exc:
        text = str(exc)
        if "libcu" in text:  # CTranslate2 opens cuBLAS/cuDNN lazily, on the first GEMM
            raise ModelLoadError(f"{text}: {CUDA_FIX}") from exc
        raise ModelLoadError(f"cannot load model {config.model!r} on {device} ({compute_type}): {text}") from exc
    gpu = _gpu_name() if device == "cuda" else None
    return LoadedEngine(engine, device, compute_type, gpu, list(warnings), batch_size, streams)
