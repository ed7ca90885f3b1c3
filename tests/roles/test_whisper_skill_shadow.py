"""The whisper_skill role's shadowing switch, on this machine with the real ansible-playbook: off by
default (the config says so, and a key left from when it was on is removed), and on only with an end
date, a rate and a key, or the run stops before anything is installed. (tests/lab/test_shadow.py turns
it on for real on the lab's mac host.)"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from ansible_run import NO_SERVER, REPO, ansible_playbook, local_play

ME = pwd.getpwuid(os.getuid())


@pytest.fixture
def skill(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "key").write_text("sk-whisperlab-test-key-0123456789\n")
    (tmp_path / "key").chmod(0o600)
    host_vars = {"ansible_user": ME.pw_name, "ansible_become": False}
    local_play(tmp_path, "whisper_skill", "clients", host_vars)

    def run(expect_failure: bool = False, **extra: object) -> str:
        extra_vars = {
            "whisperlab_servers": [{**NO_SERVER, "url": "http://wsl.home:8000/v1"}],
            "whisperlab_api_key_file": str(tmp_path / "key"),
            "whisperlab_tls": False,
            "whisperlab_homes": {ME.pw_name: str(home)},
            "whisper_skill_source": str(REPO / "skills/openai-whisper-api"),
            **extra,
        }
        result = ansible_playbook(
            tmp_path / "hosts.yml", tmp_path / "play.yml", extra_vars, env={"ANSIBLE_LOCAL_TEMP": str(tmp_path / "a")}
        )
        assert (result.returncode != 0) == expect_failure, result.stdout + result.stderr
        return result.stdout

    run.home = home
    return run


def test_off_by_default_and_a_key_left_from_before_is_removed(skill):
    left = Path(skill.home) / ".config/whisperlab/shadow-key"
    left.parent.mkdir(parents=True)
    left.write_text("sk-users-own-openai-key")
    waiting = Path(skill.home) / ".local/state/whisperlab/shadow/spool/job.x"
    waiting.mkdir(parents=True)
    (waiting / "audio.ogg").write_bytes(b"a copy of a note")
    skill()
    assert not waiting.parent.exists()  # a copy of a note waiting to be sent goes too
    config = (Path(skill.home) / ".config/whisperlab/client.env").read_text()
    assert "\nWHISPER_SHADOW=0\n" in config and "\nWHISPER_SHADOW_URL=" not in config
    assert not left.exists()


@pytest.mark.parametrize(
    "settings, says",
    [
        (
            {"whisper_skill_shadow_key_file": "/k", "whisper_skill_shadow_package": "/w.whl"},
            "whisper_skill_shadow_until must be its last day (YYYY-MM-DD), not ''",
        ),
        (
            {
                "whisper_skill_shadow_until": "2026-12-31",
                "whisper_skill_shadow_rate": 150,
                "whisper_skill_shadow_key_file": "/k",
                "whisper_skill_shadow_package": "/w.whl",
            },
            "a percentage from 0 to 100, not 150",
        ),
        (
            {"whisper_skill_shadow_until": "2026-12-31", "whisper_skill_shadow_package": "/w.whl"},
            "the second endpoint's key on the controller: not set",
        ),
    ],
    ids=["no-end-date", "rate", "no-key"],
)
def test_on_needs_an_end_date_a_rate_and_a_key(skill, settings, says):
    output = skill(expect_failure=True, whisper_skill_shadow=True, **settings)
    assert "whisper_skill_shadow is on" in output and says in output
    assert "Shadowing sends your audio to https://api.openai.com/v1" in output
    assert not (Path(skill.home) / ".local/share/whisperlab").exists()


def test_the_order_the_canary_sets_is_kept_by_a_later_run(skill):
    """whisperlab canary --apply runs the roles once with whisperlab_client_order; the next plain run
    (keep) must not undo it."""
    config = Path(skill.home) / ".config/whisperlab/client.env"

    def order() -> str:
        return [line for line in config.read_text().splitlines() if line.startswith("WHISPER_ORDER=")][-1]

    skill()
    assert order() == "WHISPER_ORDER=local_first"  # a first run
    skill(whisperlab_client_order="local_last")
    assert order() == "WHISPER_ORDER=local_last"
    assert "changed=0" in skill().split("PLAY RECAP")[-1] and order() == "WHISPER_ORDER=local_last"
    skill(whisperlab_client_order="local_first")
    assert order() == "WHISPER_ORDER=local_first"
