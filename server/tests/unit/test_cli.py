"""The whisper-server command's exits before it serves anything: a usage error, a missing model, and a
host beyond loopback without a key. Each runs the command, which stops before it loads a model."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import free_port


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


def test_the_command_exits_2_rather_than_listen_openly():
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_")}
    result = subprocess.run(
        [sys.executable, "-m", "whisper_server", "--model", "x", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, "WHISPER_API_KEY": "  "},
    )
    assert result.returncode == 2, result.stderr
    assert "no API key" in result.stderr and "listening" not in result.stdout + result.stderr
