"""engine/device.py: cpu or cuda, the compute type, batch size and streams, on a stand-in probe (and one
answer from the real CTranslate2). Loads no model."""

from __future__ import annotations

import pytest

import whisper_server.config as config_module
from whisper_server.config import Config
from whisper_server.engine import ModelLoadError
from whisper_server.engine.device import (
    CUDA_FIX,
    Probe,
    choose_device,
    resolve_batch_size,
    resolve_compute_type,
    resolve_sequential_seconds,
    resolve_streams,
)


def probe(gpus=0, missing=(), types=()):
    return Probe(lambda: gpus, lambda lib: lib not in missing, lambda device: frozenset(types))


@pytest.mark.parametrize("cores, streams", [(1, 1), (2, 2), (4, 2), (8, 2), (12, 3), (16, 4)])
def test_streams_auto_on_a_cpu_come_from_the_cores(monkeypatch, cores, streams):
    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert resolve_streams(Config(model="x"), "cpu") == streams
    assert resolve_streams(Config(model="x"), "cuda") == 1
    assert resolve_streams(Config(model="x", streams=3), "cpu") == 3


def test_batch_size_auto_depends_on_the_device():
    assert (resolve_batch_size(Config(model="x"), "cpu"), resolve_batch_size(Config(model="x"), "cuda")) == (4, 16)
    assert resolve_batch_size(Config(model="x", batch_size=1), "cuda") == 1


def test_a_cpu_decodes_notes_up_to_two_minutes_window_after_window_and_a_gpu_batches_past_one():
    auto = Config(model="x")
    assert (resolve_sequential_seconds(auto, "cpu"), resolve_sequential_seconds(auto, "cuda")) == (120.0, 30.0)
    assert resolve_sequential_seconds(Config(model="x", sequential_seconds=45), "cuda") == 45


def test_device_choice():
    auto, cuda, cpu = (Config(model="x", device=d) for d in ("auto", "cuda", "cpu"))
    assert choose_device(auto, probe(0)) == ("cpu", [])
    assert choose_device(auto, probe(1)) == ("cuda", [])
    assert choose_device(cpu, probe(1)) == ("cpu", [])
    with pytest.raises(ModelLoadError, match="sees no CUDA GPU"):
        choose_device(cuda, probe(0))


def test_missing_cuda_libraries_name_the_library_and_the_fix():
    device, warnings = choose_device(Config(model="x"), probe(1, missing=("libcublas.so.12",)))
    assert device == "cpu"
    assert "libcublas.so.12" in warnings[0] and "nvidia-cublas-cu12" in warnings[0]
    assert "LD_LIBRARY_PATH" in warnings[0] and "Falling back to CPU" in warnings[0]
    with pytest.raises(ModelLoadError) as raised:
        choose_device(Config(model="x", device="cuda"), probe(1, missing=("libcudnn.so.9",)))
    assert "libcudnn.so.9" in str(raised.value) and CUDA_FIX in str(raised.value)


def test_compute_type():
    # When CTranslate2 cannot say what the device supports, the old defaults.
    assert resolve_compute_type(Config(model="x"), "cuda", probe()) == "float16"
    assert resolve_compute_type(Config(model="x"), "cpu", probe()) == "int8"
    assert resolve_compute_type(Config(model="x", compute_type="float32"), "cpu", probe()) == "float32"


# What CTranslate2 4.x reports for a Turing-or-newer card, a Pascal card (no fast FP16) and an x86 CPU.
MODERN_GPU = ("float32", "float16", "int8_float16", "bfloat16", "int8", "int8_float32", "int8_bfloat16")
PASCAL_GPU = ("float32", "int8", "int8_float32")
X86_CPU = ("float32", "int8", "int8_float32")


def test_auto_compute_type_follows_what_the_device_supports():
    auto = Config(model="x")
    assert resolve_compute_type(auto, "cuda", probe(types=MODERN_GPU)) == "float16"
    # A GPU without fast FP16: float16 would stop the load (and crash-loop the unit); int8 runs.
    assert resolve_compute_type(auto, "cuda", probe(types=PASCAL_GPU)) == "int8"
    assert resolve_compute_type(auto, "cuda", probe(types=("float32",))) == "float32"
    assert resolve_compute_type(auto, "cpu", probe(types=X86_CPU)) == "int8"
    assert resolve_compute_type(Config(model="x", compute_type="default"), "cuda", probe(types=PASCAL_GPU)) == "int8"


def test_a_compute_type_the_device_lacks_is_refused_with_the_list():
    with pytest.raises(ModelLoadError) as raised:
        resolve_compute_type(Config(model="x", compute_type="float16"), "cuda", probe(types=PASCAL_GPU))
    assert "float16 is not supported" in str(raised.value)
    assert "float32, int8, int8_float32" in str(raised.value) and "auto" in str(raised.value)
    assert resolve_compute_type(Config(model="x", compute_type="int8"), "cuda", probe(types=PASCAL_GPU)) == "int8"


def test_the_real_ctranslate2_answers_for_this_cpu():
    # The system probe asks CTranslate2 itself; every x86 build supports int8 and float32 on a CPU.
    assert resolve_compute_type(Config(model="x"), "cpu") == "int8"
    with pytest.raises(ModelLoadError, match="not supported on this cpu"):
        resolve_compute_type(Config(model="x", compute_type="float16"), "cpu")
