"""Loading the model: on the chosen device, warmed up, with errors a user can act on."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from whisper_server.config import Config
from whisper_server.engine.device import (
    CUDA_FIX,
    SYSTEM_PROBE,
    ModelLoadError,
    Probe,
    choose_device,
    gpu_name,
    is_cuda_library_error,
    resolve_batch_size,
    resolve_compute_type,
    resolve_sequential_seconds,
    resolve_streams,
)
from whisper_server.engine.types import Engine
from whisper_server.engine.whisper import RANDOM_SEED, WhisperEngine

log = logging.getLogger("whisper_server")


@dataclass
class LoadedEngine:
    engine: Engine
    device: str
    compute_type: str
    gpu_name: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    batch_size: int = 1
    streams: int = 1
    sequential_seconds: float = 30.0


def load_engine(config: Config, probe: Probe = SYSTEM_PROBE) -> LoadedEngine:
    """Load the model once and warm it up. Raises ModelLoadError with a message a user can act on."""
    device, warnings = choose_device(config, probe)
    for warning in warnings:
        log.warning(warning)
    try:
        return _load_on(config, device, warnings, probe)
    except ModelLoadError as exc:
        if device == "cuda" and config.device == "auto" and is_cuda_library_error(str(exc)):
            warning = f"{exc}. Falling back to CPU."
            log.warning(warning)
            return _load_on(config, "cpu", warnings + [warning], probe)
        raise


def _load_on(config: Config, device: str, warnings: list[str], probe: Probe = SYSTEM_PROBE) -> LoadedEngine:
    import ctranslate2

    from whisper_server.engine.fallback import LoopAwareWhisperModel

    # The temperature fallback samples. Seeded, a restarted server given the same requests in the same
    # order answers the same: a transcript can be reproduced, and tests do not hang on luck.
    ctranslate2.set_random_seed(RANDOM_SEED)

    compute_type = resolve_compute_type(config, device, probe)
    batch_size = resolve_batch_size(config, device)
    streams = resolve_streams(config, device)
    sequential_seconds = resolve_sequential_seconds(config, device)
    source = config.model
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "model.bin").is_file():
            raise ModelLoadError(f"model folder {path} has no model.bin: is it a CTranslate2 Whisper model?")
        source = str(path)
    elif source.startswith(("/", "./", "../", "~")):
        raise ModelLoadError(f"model folder {source} does not exist")
    try:
        model = LoopAwareWhisperModel(
            source,
            device=device,
            compute_type=compute_type,
            # The Batcher makes the model calls, `streams` at once, each over every window that is ready.
            cpu_threads=config.cpu_threads,
            num_workers=streams,
            download_root=str(config.download_root) if config.download_root else None,
        )
        engine = WhisperEngine(
            model,
            beam_size=config.beam_size,
            vad=config.vad,
            batch_size=batch_size,
            streams=streams,
            sequential_seconds=sequential_seconds,
        )
        engine.warm_up()
    except ModelLoadError:
        raise
    except Exception as exc:
        text = str(exc)
        if is_cuda_library_error(text):  # CTranslate2 opens cuBLAS/cuDNN lazily, on the first GEMM
            raise ModelLoadError(f"{text}: {CUDA_FIX}") from exc
        raise ModelLoadError(f"cannot load model {config.model!r} on {device} ({compute_type}): {text}") from exc
    gpu = gpu_name() if device == "cuda" else None
    return LoadedEngine(engine, device, compute_type, gpu, list(warnings), batch_size, streams, sequential_seconds)
