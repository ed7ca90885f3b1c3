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
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

import numpy as np

from whisper_server.config import Config

log = logging.getLogger("whisper_server")

SAMPLE_RATE = 16000

# The CUDA libraries CTranslate2 4.x opens at run time, and how a user gets them.
CUDA_LIBRARIES = ("libcublas.so.12", "libcudnn.so.9")
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


class Engine(Protocol):
    multilingual: bool

    def transcribe(
        self, audio: np.ndarray, options: Options, check: Callable[[], None] = ...
    ) -> tuple[Iterator[Segment], Info]:
        """check() is called before each model call while the segments are drawn; it may raise to
        stop the work (a departed client)."""
        ...


# The check of the request whose segments this thread is drawing, if any (see _Interruptible).
_current = threading.local()


def _poll() -> None:
    check = getattr(_current, "check", None)
    if check is not None:
        check()


class _Interruptible:
    """CTranslate2's Whisper, asking the running request before each encode and generate call.

    One window can take many calls (the temperature fallback decodes it up to six times), so a
    check between segments alone could let a departed client's work run on for many seconds."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def encode(self, *args, **kwargs):
        _poll()
        return self._inner.encode(*args, **kwargs)

    def generate(self, *args, **kwargs):
        _poll()
        return self._inner.generate(*args, **kwargs)


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


class WhisperEngine:
    """faster-whisper behind the Engine interface."""

    def __init__(self, model, *, beam_size: int, vad: bool, batch_size: int):
        if not isinstance(model.model, _Interruptible):
            model.model = _Interruptible(model.model)
        self._model = model
        self._beam_size = beam_size
        self._vad = vad
        self._batch_size = batch_size
        self.multilingual = bool(model.model.is_multilingual)

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
        )
        if self._batch_size > 1:
            from faster_whisper import BatchedInferencePipeline

            # One pipeline per request: it keeps state between calls (last_speech_timestamp), which
            # concurrent requests must not share. It is a thin wrapper; the model is shared.
            pipeline = BatchedInferencePipeline(model=self._model)
            if not self._vad:
                # Without VAD the pipeline needs the windows given; it refuses audio over 30 s otherwise.
                length = audio.shape[0] / SAMPLE_RATE
                starts = range(0, math.ceil(length), 30)
                kwargs["clip_timestamps"] = [{"start": float(s), "end": min(s + 30.0, length)} for s in starts]
            # It decodes each window once, at the first temperature: no fallback schedule.
            segments, info = pipeline.transcribe(audio, batch_size=self._batch_size, **kwargs)
        else:
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


SYSTEM_PROBE = Probe(_cuda_device_count, _can_load_library)


@dataclass
class LoadedEngine:
    engine: Engine
    device: str
    compute_type: str
    gpu_name: Optional[str] = None
    warnings: list[str] = field(default_factory=list)


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


def resolve_compute_type(config: Config, device: str) -> str:
    if config.compute_type != "auto":
        return config.compute_type
    return "float16" if device == "cuda" else "int8"


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
        return _load_on(config, device, warnings)
    except ModelLoadError as exc:
        if device == "cuda" and config.device == "auto" and "libcu" in str(exc):
            warning = f"{exc}. Falling back to CPU."
            log.warning(warning)
            return _load_on(config, "cpu", warnings + [warning])
        raise


def _load_on(config: Config, device: str, warnings: list[str]) -> LoadedEngine:
    from faster_whisper import WhisperModel

    compute_type = resolve_compute_type(config, device)
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
            cpu_threads=config.cpu_threads,
            num_workers=config.workers,
            download_root=str(config.download_root) if config.download_root else None,
        )
        engine = WhisperEngine(model, beam_size=config.beam_size, vad=config.vad, batch_size=config.batch_size)
        engine.warm_up()
    except ModelLoadError:
        raise
    except Exception as exc:
        text = str(exc)
        if "libcu" in text:  # CTranslate2 opens cuBLAS/cuDNN lazily, on the first GEMM
            raise ModelLoadError(f"{text}: {CUDA_FIX}") from exc
        raise ModelLoadError(f"cannot load model {config.model!r} on {device} ({compute_type}): {text}") from exc
    gpu = _gpu_name() if device == "cuda" else None
    return LoadedEngine(engine, device, compute_type, gpu, list(warnings))
