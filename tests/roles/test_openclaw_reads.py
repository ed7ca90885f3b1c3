"""Which openclaw commands the openclaw role runs (each starts Node: seconds of CPU on a Mac), with a
stand-in openclaw (fake_openclaw.py) and the real ansible-playbook on this machine: the slow provider
check once per OpenClaw build, the auth profiles only where an older whisperlab left a trace, nothing
past --version for an OpenClaw too old, and no separate validate after the validated write."""

from __future__ import annotations

import json
import os
import pwd
import re
from pathlib import Path

import pytest
from ansible_run import NO_SERVER, ansible_playbook, local_play

FAKE = Path(__file__).with_name("fake_openclaw.py")
ME = pwd.getpwuid(os.getuid())


@pytest.fixture
def client(tmp_path):
    """A client on this machine: a stand-in openclaw and a key; run() applies the openclaw role."""
    (tmp_path / "oc").mkdir()
    (tmp_path / "key").write_text("sk-test-key-for-the-fake-openclaw\n")
    (tmp_path / "home").mkdir()
    # Connection variables outrank the role's become keyword: no sudo here, nor any need of it.
    local_play(tmp_path, "openclaw", "clients", {"ansible_user": ME.pw_name, "ansible_become": False})

    def run(*flags: str, expect_failure: bool = False, **extra: object) -> tuple[str, list[str]]:
        """The run's output and the openclaw commands it made (each as its joined arguments)."""
        calls = tmp_path / "oc" / "calls.log"
        calls.unlink(missing_ok=True)
        extra_vars = {
            "whisperlab_servers": [{**NO_SERVER, "url": "http://wsl.home:8000/v1"}],
            "whisperlab_api_key_file": str(tmp_path / "key"),
            "whisperlab_tls": False,
            "openclaw_executable": str(FAKE),
            "openclaw_key_path": str(tmp_path / "home" / "whisperlab" / "openclaw-key"),
            **extra,
        }
        result = ansible_playbook(
            tmp_path / "hosts.yml",
            tmp_path / "play.yml",
            extra_vars,
            env={"FAKE_OPENCLAW_DIR": str(tmp_path / "oc"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible")},
            args=list(flags),
        )
        assert (result.returncode != 0) == expect_failure, result.stdout + result.stderr
        return result.stdout, calls.read_text().splitlines() if calls.exists() else []

    run.dir = tmp_path
    return run


def changed(output: str) -> int:
    return int(re.search(r"box\s+: ok=\d+\s+changed=(\d+)", output).group(1))


def kinds(calls: list[str]) -> set[str]:
    return {" ".join(call.split()[:2]) for call in calls}


def test_a_plain_run_checks_the_provider_once_per_build_and_validates_once(client):
    _, calls = client()
    assert "plugins inspect" in kinds(calls)
    second, calls = client()
    assert changed(second) == 0
    assert "plugins inspect" not in kinds(calls), calls
    assert "models auth" not in kinds(calls), calls
    # The write validates the whole config; check mode, which does not write, validates on its own.
    assert "config set" in kinds(calls) and "config validate" not in kinds(calls), calls
    dry, calls = client("--check")
    assert changed(dry) == 0
    assert "config validate" in kinds(calls), calls
    (client.dir / "oc" / "version").write_text("OpenClaw 2026.10.1 (newer)\n")
    _, calls = client()
    assert "plugins inspect" in kinds(calls), "a new build was not checked"


@pytest.mark.parametrize("trace", ["record", "media", "order"])
def test_an_older_installs_trace_reads_the_profiles_and_its_profile_goes(client, trace):
    home = client.dir / "home" / "whisperlab"
    legacy = {"id": "openai:whisperlab", "provider": "openai", "type": "api_key"}
    (client.dir / "oc" / "profiles.json").write_text(json.dumps([legacy]))
    if trace == "record":
        home.mkdir(parents=True)
        (home / "openclaw-profile.sha256").write_text("0" * 64 + "\n")
    elif trace == "media":
        entry = {"provider": "openai", "profile": "openai:whisperlab", "capabilities": ["audio"]}
        (client.dir / "oc" / "openclaw.json").write_text(json.dumps({"tools": {"media": {"models": [entry]}}}))
    else:
        (client.dir / "oc" / "openclaw.json").write_text(json.dumps({"auth": {"order": {"openai": [legacy["id"]]}}}))
    _, calls = client()
    assert "models auth list --json --provider openai" in calls
    assert "models auth logout openai:whisperlab --yes" in calls
    assert not (home / "openclaw-profile.sha256").exists()
    assert json.loads((client.dir / "oc" / "profiles.json").read_text()) == []


def test_an_openclaw_too_old_is_asked_only_its_version(client):
    out, calls = client(expect_failure=True, openclaw_min_version="2099.1.1")
    assert "whisperlab configures 2099.1.1 or newer" in out
    assert calls == ["--version"]


def test_an_openclaw_that_cannot_say_its_version_stops_with_its_error(client):
    broken = client.dir / "broken-openclaw"
    broken.write_text("#!/bin/sh\necho 'node: cannot load openclaw' >&2\nexit 3\n")
    broken.chmod(0o755)
    out, _ = client(expect_failure=True, openclaw_executable=str(broken))
    assert "--version` exited 3: node: cannot load openclaw" in out
    assert "Nothing was changed" in out
