"""Which device and settings the model runs with: cpu or cuda, the compute type, batch size and
streams, from the configuration and what the machine offers. Loads no model (devcheck.py uses it alone).
"""

from __future__ import annotations

import ctypes
import math
import os
from dataclasses import dataclass
from typing import Callable, Optional

from whisper_server.config import Config, usable_cores

# The CUDA libraries CTranslate2 4.x opens at run time, and how a user gets them. cuDNN 9 opens its
# ops and cnn sub-libraries beside libcudnn.so.9 only when the encoder's convolutions first run.
CUDA_LIBRARIES = ("libcublas.so.12", "libcudnn.so.9", "libcudnn_ops.so.9", "libcudnn_cnn.so.9")
CUDA_FIX = (
    "install them with `pip install nvidia-cublas-cu12 'nvidia-cudnn-cu12==9.*'` in the server's "
    "virtualenv and put their lib folders on LD_LIBRARY_PATH before the server starts, e.g. "
    "LD_LIBRARY_PATH=$VENV/lib/python3.X/site-packages/nvidia/cublas/lib:"
    "$VENV/lib/python3.X/site-packages/nvidia/cudnn/lib"
)


class ModelLoadError(RuntimeError):
    """The model cannot be loaded or run; the message says why and what to do."""


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


def resolve_sequential_seconds(config: Config, device: str) -> float:
    """How long audio may be and still be decoded window after window. On a CPU, notes up to two
    minutes: there it is 0.172 WER against 0.185 in side-by-side chunks on five ~70 s dictations, for
    about 1.6x the time (bench step 10); at six minutes the two were equal. On a GPU batching is the
    point (3.7x in faster-whisper's own figures): long audio goes side by side past one window."""
    if config.sequential_seconds:
        return config.sequential_seconds
    return 30.0 if device == "cuda" else 120.0


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


def is_cuda_library_error(text: str) -> bool:
    """Whether an error names a CUDA library that would not load (libcublas, libcudnn...):
    CTranslate2 opens them lazily, on the first GEMM, so such an error can come at any model call."""
    return "libcu" in text


def gpu_name() -> Optional[str]:
    """The first GPU's name as nvidia-smi gives it, or None."""
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
