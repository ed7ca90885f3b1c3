"""Configuration, device choice and model loading errors: no model needed."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import whisper_server.config as config_module
from conftest import free_port
from whisper_server.admission import Admission, QueueFull
from whisper_server.config import OPENAI_MODEL_NAMES, Config, ConfigError, load_config
from whisper_server.engine import ModelLoadError, load_engine
from whisper_server.engine.device import (
    CUDA_FIX,
    Probe,
    choose_device,
    resolve_batch_size,
    resolve_compute_type,
    resolve_streams,
)

# Without a key the server listens on loopback only (test_security.py); these tests are about the rest.
LOCAL = {"WHISPER_HOST": "127.0.0.1"}


def test_defaults():
    config = load_config(["--model", "small"], environ={"WHISPER_API_KEY": "sk-k"})
    assert (config.host, config.port, config.device, config.compute_type) == ("127.0.0.1", 8000, "auto", "auto")
    assert (config.max_queue, config.max_upload_mb, config.vad, config.batch_size) == (8, 25.0, True, 0)
    assert config.model_aliases == OPENAI_MODEL_NAMES
    assert "gpt-4o-transcribe" in config.model_aliases
    assert config.api_key == "sk-k" and config.allowed_hosts == ()
    assert config.max_upload_bytes == 25 * 1024 * 1024


@pytest.mark.parametrize("cores, workers, threads", [(1, 4, 1), (2, 4, 2), (4, 8, 4), (8, 16, 8), (64, 16, 8)])
def test_workers_and_threads_come_from_the_usable_cores(monkeypatch, cores, workers, threads):
    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda pid: set(range(cores)))
    config = load_config(["--model", "small"], environ=LOCAL)
    assert (config.workers, config.cpu_threads) == (workers, threads)
    assert (Config(model="x").workers, Config(model="x").cpu_threads) == (workers, threads)
    spelled = load_config(["--model", "small", "--workers", "auto"], environ={**LOCAL, "WHISPER_CPU_THREADS": "auto"})
    assert (spelled.workers, spelled.cpu_threads) == (workers, threads)
    assert (
        load_config(["--model", "small", "--workers", "3"], environ={**LOCAL, "WHISPER_CPU_THREADS": "1"}).workers == 3
    )


@pytest.mark.parametrize("cores, streams", [(1, 1), (2, 2), (4, 2), (8, 2), (12, 3), (16, 4)])
def test_streams_auto_on_a_cpu_come_from_the_cores(monkeypatch, cores, streams):
    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert resolve_streams(Config(model="x"), "cpu") == streams
    assert resolve_streams(Config(model="x"), "cuda") == 1
    assert resolve_streams(Config(model="x", streams=3), "cpu") == 3


def test_batch_size_auto_depends_on_the_device():
    assert (resolve_batch_size(Config(model="x"), "cpu"), resolve_batch_size(Config(model="x"), "cuda")) == (4, 16)
    assert resolve_batch_size(Config(model="x", batch_size=1), "cuda") == 1


def test_environment_then_flags():
    env = {
        "WHISPER_MODEL": "base",
        "WHISPER_PORT": "9000",
        "WHISPER_WORKERS": "2",
        "WHISPER_VAD": "false",
        "WHISPER_MODEL_NAMES": "whisper-1, gpt-4o-transcribe",
        "WHISPER_MODEL_ALIAS": "gpt-4o-transcribe, whisper-1,local",
        "WHISPER_BATCH_SIZE": "8",
        **LOCAL,
    }
    config = load_config([], environ=env)
    assert (config.model, config.port, config.workers, config.vad, config.batch_size) == ("base", 9000, 2, False, 8)
    assert config.model_aliases == ("whisper-1", "gpt-4o-transcribe", "local")
    flagged = load_config(["--port", "9100", "--vad"], environ=env)
    assert flagged.port == 9100 and flagged.vad is True
    narrowed = load_config(["--model-names", "whisper-1"], environ={"WHISPER_MODEL": "base", **LOCAL})
    assert narrowed.model_aliases == ("whisper-1",)


@pytest.mark.parametrize(
    "argv, env, fragment",
    [
        ([], {}, "--model / WHISPER_MODEL is required"),
        (["--model", "x", "--device", "tpu"], {}, "--device must be one of"),
        (["--model", "x", "--workers", "0"], {}, "--workers must be at least 1"),
        (["--model", "x", "--port", "70000"], {}, "--port"),
        (["--model", "x"], {"WHISPER_PORT": "eighty"}, "WHISPER_PORT"),
        (["--model", "x", "--max-upload-mb", "0"], {}, "--max-upload-mb"),
        (["--model", "x"], {"WHISPER_VAD": "perhaps"}, "WHISPER_VAD"),
        (["--model", "x", "--model-names", " , "], {}, "--model-names"),
    ],
)
def test_invalid_settings_are_named(argv, env, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("-", "\\-").replace("/", "\\/")):
        load_config(argv, environ=env)


def test_api_key_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("  sk-local-123\n")
    config = load_config(["--model", "x", "--api-key-file", str(key_file)], environ={})
    assert config.api_key == "sk-local-123"
    assert "sk-local-123" not in repr(config)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(["--model", "x", "--api-key-file", str(tmp_path / "missing")], environ={})
    key_file.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(["--model", "x", "--api-key-file", str(key_file)], environ={})


def test_api_key_from_the_environment_file(tmp_path):
    config = load_config(["--model", "x"], environ={"WHISPER_API_KEY": " sk-env-456\n"})
    assert config.api_key == "sk-env-456"
    assert "sk-env-456" not in repr(config)
    key_file = tmp_path / "key"
    key_file.write_text("from-file")
    both = load_config(["--model", "x", "--api-key-file", str(key_file)], environ={"WHISPER_API_KEY": "env"})
    assert both.api_key == "from-file"


def probe(gpus=0, missing=(), types=()):
    return Probe(lambda: gpus, lambda lib: lib not in missing, lambda device: frozenset(types))


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


def test_bad_model_paths_fail_fast(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_engine(Config(model=str(tmp_path / "nope"), device="cpu"))
    with pytest.raises(ModelLoadError, match="has no model.bin"):
        load_engine(Config(model=str(tmp_path), device="cpu"))
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_engine(Config(model=str(tmp_path), device="cpu"))


def test_admission_bounds():
    admission = Admission(workers=2, max_queue=1)
    with admission.ticket(), admission.ticket(), admission.ticket():
        assert admission.waiting == 3 and admission.running == 0
        with pytest.raises(QueueFull) as full:
            with admission.ticket():
                pass
        assert full.value.retry_after >= 1
    assert admission.waiting == 0
    with admission.ticket() as ticket:
        with ticket.run():
            assert admission.running == 1 and admission.waiting == 0
    assert admission.running == 0


def test_retry_after_is_when_one_place_frees_not_when_the_queue_drains():
    admission = Admission(workers=1, max_queue=3)
    for _ in range(5):  # recent runs took 10 s each
        admission.release(admission.acquire(lambda: None), seconds=10.0)
    mean = admission._mean_seconds
    with admission.ticket() as running, running.run():
        with admission.ticket(), admission.ticket(), admission.ticket():
            with pytest.raises(QueueFull) as full:
                with admission.ticket():
                    pass
    # Four admitted at ~mean seconds each would drain in ~4 x mean; one place frees in ~mean.
    assert 1 <= full.value.retry_after <= math.ceil(mean)
    assert admission.running == 0 and admission.waiting == 0


def run_cli(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "whisper_server", *args], capture_output=True, text=True, timeout=timeout
    )


def test_cli_usage_error_exits_2():
    result = run_cli("--model", "x", "--workers", "zero")
    assert result.returncode == 2
    assert "--workers / WHISPER_WORKERS" in result.stderr


def test_cli_fails_fast_on_a_missing_model(tmp_path):
    result = run_cli("--model", str(tmp_path / "absent"), "--port", str(free_port()), "--host", "127.0.0.1")
    assert result.returncode == 1
    assert "cannot start" in result.stdout and "does not exist" in result.stdout


def test_cuda_failing_at_warm_up_falls_back_to_cpu_on_auto(monkeypatch):
    """CTranslate2 opens cuBLAS lazily, so a broken CUDA setup can pass the probe and fail on the
    first decode; auto must still come up on the CPU, and cuda must refuse."""
    from whisper_server.engine import loader

    def fake_load(config, device, warnings, probe=None):
        if device == "cuda":
            raise ModelLoadError("Library libcublas.so.12 is not found or cannot be loaded: " + CUDA_FIX)
        return loader.LoadedEngine(object(), device, "int8", None, list(warnings))

    monkeypatch.setattr(loader, "_load_on", fake_load)
    loaded = load_engine(Config(model="x"), probe(1))
    assert loaded.device == "cpu"
    assert "libcublas.so.12" in loaded.warnings[0] and "Falling back to CPU" in loaded.warnings[0]
    with pytest.raises(ModelLoadError, match="libcublas"):
        load_engine(Config(model="x", device="cuda"), probe(1))
