"""Lab-only: the server play on the last server host, in two situations a real lab meets:

- an upgrade interrupted between copying the new wheel and installing it is finished by the next run
- a server bound to one address (whisper_server_host) passes its health gate and the testinfra checks
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GROUP = "clients"  # run once, from the lab's one client; the tests reach the server themselves


@pytest.fixture(scope="module")
def box(last_server):
    return last_server


def installed_init(box) -> str:
    """The installed package's __init__.py (the service account's home is private: read as root)."""
    venv = f"{box['home']}/.local/share/whisper-server/venv"
    return box["host"].check_output(f"sudo sh -c 'cat {venv}/lib/python3*/site-packages/whisper_server/__init__.py'")


def test_an_interrupted_upgrade_is_finished_by_the_next_run(box, server_play, tmp_path):
    # A new release: this repository with one changed line in the server's source.
    release = tmp_path / "release"
    release.mkdir()
    for part in ("ansible.cfg", "playbooks", "roles", "server"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(
                source, release / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".*cache", "build")
            )
        else:
            shutil.copy2(source, release / part)
    marker = f"# whisperlab lab release {uuid.uuid4().hex}"
    init = release / "server" / "src" / "whisper_server" / "__init__.py"
    init.write_text(init.read_text() + marker + "\n")
    try:
        # The run builds and copies the new wheel, then fails before installing it (a pip install that cannot
        # succeed stands in for a lost connection or a full disk).
        bad = {"whisper_server_cuda_pip_packages": ["whisperlab-no-such-package==0"]}
        broken = server_play(box, "-e", json.dumps(bad), repo=release)
        assert broken.returncode != 0
        assert marker not in installed_init(box)
        # The next, ordinary run must install the wheel it finds already copied.
        assert server_play(box, repo=release).returncode == 0
        assert marker in installed_init(box)
    finally:
        assert server_play(box).returncode == 0
    assert marker not in installed_init(box)


def test_a_server_bound_to_one_address_passes_its_gate_and_checks(box, server_play):
    host_vars = Path(box["inventory"]).parent / "host_vars" / f"{box['name']}.yml"
    before = host_vars.read_text() if host_vars.exists() else None
    made_dir = not host_vars.parent.exists()
    host_vars.parent.mkdir(exist_ok=True)
    host_vars.write_text(
        (before or "---\n") + f"whisper_server_host: {box['address']}\nwhisper_server_health_timeout: 30\n"
    )
    try:
        result = server_play(box)
        assert result.returncode == 0
        assert f"{box['url'].split(':')[0]}://{box['address']}:8000/health must answer status ready" in result.stdout
        # Only that address listens; loopback does not answer (-k: refused before any certificate is seen).
        assert box["host"].run(f"curl -sS -k --max-time 5 {box['url'].split(':')[0]}://127.0.0.1:8000/health").rc == 7
        checks = subprocess.run(
            [
                "python3",
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(REPO / "tests" / "test_whisper_server.py"),
                f"--hosts=ansible://{box['name']}",
                f"--ansible-inventory={box['inventory']}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
        )
        print(checks.stdout[-5000:])
        assert checks.returncode == 0
        assert " passed" in checks.stdout and "failed" not in checks.stdout
    finally:
        if before is None:
            host_vars.unlink()
            if made_dir:
                host_vars.parent.rmdir()
        else:
            host_vars.write_text(before)
        assert server_play(box).returncode == 0
