"""whisper_server.devcheck: the check the role runs with the unit's environment before a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from whisper_server.devcheck import check
from whisper_server.engine.device import Probe

MODERN_GPU = frozenset({"float32", "float16", "int8_float16", "bfloat16", "int8", "int8_float32"})
PASCAL_GPU = frozenset({"float32", "int8", "int8_float32"})


def gpu_box(gpus=1, missing=(), types=MODERN_GPU):
    return Probe(lambda: gpus, lambda lib: lib not in missing, lambda device: types if device == "cuda" else PASCAL_GPU)


def test_a_working_gpu_box_reports_cuda_and_its_compute_type():
    report = check("cuda", "auto", gpu_box())
    assert report["error"] is None
    assert (report["device"], report["compute_type"], report["gpus"]) == ("cuda", "float16", 1)
    assert all(report["libraries"].values()) and "libcudnn_cnn.so.9" in report["libraries"]
    assert check("cuda", "auto", gpu_box(types=PASCAL_GPU))["compute_type"] == "int8"


def test_each_way_a_gpu_box_fails_is_named():
    assert "sees no CUDA GPU" in check("cuda", "auto", gpu_box(gpus=0))["error"]
    broken = check("cuda", "auto", gpu_box(missing=("libcublas.so.12",)))
    assert "libcublas.so.12" in broken["error"] and "LD_LIBRARY_PATH" in broken["error"]
    assert broken["libraries"]["libcublas.so.12"] is False
    # cuDNN's sub-libraries load lazily, on the first convolution: the check loads them now.
    assert "libcudnn_ops.so.9" in check("cuda", "auto", gpu_box(missing=("libcudnn_ops.so.9",)))["error"]
    assert "float16 is not supported" in check("cuda", "float16", gpu_box(types=PASCAL_GPU))["error"]


def test_auto_falls_back_to_the_cpu_with_a_warning_but_cuda_does_not():
    report = check("auto", "auto", gpu_box(missing=("libcudnn.so.9",)))
    assert report["error"] is None and report["device"] == "cpu"
    assert "Falling back to CPU" in report["warnings"][0]


def run_devcheck(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_")}
    return subprocess.run(
        [sys.executable, "-m", "whisper_server.devcheck", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_the_command_on_this_machine_which_has_no_gpu():
    # Real CTranslate2, no stand-ins: this machine has no CUDA GPU.
    cuda = run_devcheck("--device", "cuda")
    assert cuda.returncode == 1, cuda.stderr
    assert "sees no CUDA GPU" in json.loads(cuda.stdout)["error"]
    cpu = run_devcheck("--device", "cpu")
    assert cpu.returncode == 0, cpu.stderr
    report = json.loads(cpu.stdout)
    assert (report["device"], report["compute_type"]) == ("cpu", "int8")
    assert "float32" in report["compute_types"]
    assert run_devcheck("--device", "tpu").returncode == 2
