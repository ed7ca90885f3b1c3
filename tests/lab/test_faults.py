"""Fault checks for the simulated lab only: they reboot and kill things. Never collected by
`pytest tests/`; the lab sequence runs this file by path."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from whisperlab_testkit.inventory_facts import server_facts
from whisperlab_testkit.lab import wait_ready

LAB = Path(__file__).with_name("lab.sh")
GROUP = "whisper_servers"


@pytest.fixture(scope="module")
def server(host, request):
    return server_facts(host, request.config.option.ansible_inventory)


def systemctl_user(host, server, *args) -> str:
    command = f"{server['systemctl']} " + " ".join(args)
    return host.run(command).stdout.strip()


def test_server_comes_back_after_reboot_with_nobody_logged_in(host, server):
    subprocess.run([str(LAB), "reboot", server["name"]], check=True, timeout=180)
    # Polled over the network from here: no SSH, so no login session exists while it comes up.
    health = wait_ready(server["url"], timeout=180)
    assert health["uptime_s"] < 180
    subprocess.run([str(LAB), "wait", server["name"]], check=True, timeout=240)
    assert systemctl_user(host, server, "is-active", "whisper.service") == "active"


def test_kill_9_is_restarted_within_10_s(host, server):
    old = systemctl_user(host, server, "show", "-p", "MainPID", "--value", "whisper.service")
    assert old.isdigit() and old != "0"
    host.run(f"sudo kill -9 {old}")
    started = time.monotonic()
    new = old
    while time.monotonic() - started < 10:
        new = systemctl_user(host, server, "show", "-p", "MainPID", "--value", "whisper.service")
        if new not in (old, "0", "") and systemctl_user(host, server, "is-active", "whisper.service") == "active":
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"whisper.service not restarted within 10 s of kill -9 (MainPID {old} -> {new})")
    wait_ready(server["url"], timeout=120)
