"""The simulated lab, as its checks reach it: the mac host over lab.sh's SSH, a server's /health, and
ansible-playbook runs against the lab's inventory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Mapping, Optional

import requests

from whisperlab_testkit.support import REPO

LAB = REPO / "tests" / "lab" / "lab.sh"
INVENTORY = REPO / "inventory" / "lab" / "hosts.yml"
KEY_FILE = REPO / "inventory" / "lab" / ".secrets" / "whisper_api_key"


def api_key() -> str:
    return KEY_FILE.read_text().strip()


def mac(command: str, stdin: Optional[bytes] = None, check: bool = False) -> subprocess.CompletedProcess:
    """Runs a shell command as the lab user on the mac host; with check, a failure fails the test."""
    result = subprocess.run([str(LAB), "ssh", "mac", command], input=stdin, capture_output=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"mac: {command} exited {result.returncode}\n{result.stderr.decode()}")
    return result


# What /health says of a server that answers requests: its model loaded, or unloaded after an idle spell
# (whisper_server_idle_unload_seconds; the lab's second server) and loaded again by the next request.
SERVING = ("ready", "unloaded")


def wait_ready(url: str, timeout: float) -> dict:
    """Waits for a server's /health to say it serves: ready, or unloaded by an idle unload (the next request
    loads it); returns it in full (asked with the key)."""
    headers = {"Authorization": f"Bearer {api_key()}"}
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(url + "/health", headers=headers, timeout=2)
            last = response.json()
            if response.status_code == 200 and last["status"] in SERVING:
                return last
        except (requests.ConnectionError, requests.Timeout, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url}/health not ready within {timeout} s (last answer: {last})")


def ansible_playbook(
    playbook: Path | str,
    *args: str,
    inventory: Path | str = INVENTORY,
    extra_vars: Optional[Mapping[str, object]] = None,
    cwd: Path = REPO,
    env: Optional[Mapping[str, str]] = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess:
    """One real ansible-playbook run; its output's tail is printed, for a failing test's report."""
    extra = ["-e", json.dumps(dict(extra_vars))] if extra_vars else []
    result = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(playbook), *extra, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    print(result.stdout[-20000:], result.stderr[-5000:])
    return result


def a_release(folder: Path) -> tuple[Path, str]:
    """A new release in folder/release: this repository's playbooks, roles and server, with one line
    added to the server's source (so its wheel is another); and that line."""
    release = folder / "release"
    release.mkdir()
    for part in ("ansible.cfg", "playbooks", "roles", "server"):
        source = REPO / part
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*cache", "build")
            shutil.copytree(source, release / part, ignore=ignore)
        else:
            shutil.copy2(source, release / part)
    marker = f"# whisperlab lab release {uuid.uuid4().hex}"
    init = release / "server" / "src" / "whisper_server" / "__init__.py"
    init.write_text(init.read_text() + marker + "\n")
    return release, marker
