"""Fault checks for the simulated lab only: they reboot hosts. Never collected by `pytest tests/`;
the lab sequence runs this file by path."""

import subprocess
from pathlib import Path

import pytest

LAB = Path(__file__).with_name("lab.sh")

testinfra_hosts = ["ansible://whisper_servers"]


@pytest.fixture(scope="module")
def rebooted():
    subprocess.run([str(LAB), "reboot", "wsl"], check=True, timeout=300)


def test_host_comes_back_after_reboot(host, rebooted):
    assert host.run("systemctl is-system-running --wait").stdout.strip() in ("running", "degraded")
    assert host.service("ssh").is_running
