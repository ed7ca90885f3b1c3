"""The cuda role's guard against a Linux NVIDIA driver inside WSL: its patterns, as the role applies
them (Jinja's `match`, which is Python's re.match, on `^(p1|p2|...)$`), against real package names."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DEFAULTS = Path(__file__).resolve().parents[2] / "roles" / "cuda" / "defaults" / "main.yml"

# Each of these puts a Linux driver, its kernel module, or its libcuda.so.1 / libnvidia-ml.so.1 /
# nvidia-smi on the system (Ubuntu 24.04's and Debian 12's names, and NVIDIA's repository's).
DRIVER_PACKAGES = [
    "nvidia-driver-550",
    "nvidia-driver-570-open",
    "nvidia-driver-550-server",
    "nvidia-driver",
    "nvidia-dkms-550",
    "nvidia-kernel-common-550",
    "nvidia-kernel-source-550-open",
    "nvidia-kernel-dkms",
    "nvidia-headless-550",
    "nvidia-headless-no-dkms-550",
    "nvidia-utils-550",
    "nvidia-compute-utils-550",
    "nvidia-firmware-550-550.127.05",
    "nvidia-smi",
    "nvidia-open",
    "libnvidia-compute-550",
    "libnvidia-gl-550",
    "libnvidia-decode-550",
    "libnvidia-encode-550",
    "libnvidia-extra-550",
    "libnvidia-fbc1-550",
    "libnvidia-cfg1-550",
    "libnvidia-common-550",
    "libnvidia-ml1",
    "libcuda1",
    "xserver-xorg-video-nvidia-550",
    "linux-modules-nvidia-550-generic",
    "linux-objects-nvidia-550-6.8.0-45-generic",
    "linux-signatures-nvidia-6.8.0-45-generic",
    "cuda-drivers",
    "cuda-drivers-550",
    "cuda",
    "cuda-12-9",
    "cuda-runtime-12-9",
]

# What a GPU box in WSL may have: the CUDA libraries and toolkit without a driver, the container
# toolkit, and everything unrelated.
ALLOWED = [
    "libcublas-12-9",
    "libcudnn9-cuda-12",
    "cuda-keyring",
    "cuda-toolkit-12-9",
    "cuda-libraries-12-9",
    "cuda-cudart-12-9",
    "libnvidia-container1",
    "nvidia-container-toolkit",
    "python3-venv",
    "nvidia-cuda-toolkit-doc",
]


def forbidden() -> re.Pattern:
    patterns = yaml.safe_load(DEFAULTS.read_text())["cuda_forbidden_packages"]
    return re.compile("^(" + "|".join(patterns) + ")$")


def test_every_driver_package_is_refused():
    pattern = forbidden()
    assert [name for name in DRIVER_PACKAGES if not pattern.match(name)] == []


def test_libraries_and_toolkit_are_allowed():
    pattern = forbidden()
    assert [name for name in ALLOWED if pattern.match(name)] == []
