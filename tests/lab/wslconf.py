"""Lab-only: the wsl role edits /etc/wsl.conf as an ini file and keeps the user's other settings."""

from __future__ import annotations

import subprocess

GROUP = "whisper_servers"

PLAY = "- name: Only wsl\n  hosts: whisper_servers\n  roles: [wsl]\n"
USERS_OWN = "[network]\ngenerateResolvConf = false\n\n[boot]\nsystemd = false\ncommand = echo hello\n"


def test_other_settings_survive(host, request, tmp_path):
    playbook = tmp_path / "wsl.yml"
    playbook.write_text(PLAY)
    original = host.file("/etc/wsl.conf").content_string
    try:
        host.run(f"printf '%s' '{USERS_OWN}' | sudo tee /etc/wsl.conf >/dev/null")
        # systemd is PID 1 here, so the role's assert passes and only the file changes.
        subprocess.run(
            ["ansible-playbook", "-i", request.config.option.ansible_inventory, str(playbook)], check=True, timeout=120
        )
        lines = [line.replace(" ", "") for line in host.file("/etc/wsl.conf").content_string.splitlines()]
        assert "generateResolvConf=false" in lines
        assert "command=echohello" in lines
        assert "systemd=true" in lines and "systemd=false" not in lines
        assert lines.count("[boot]") == 1
    finally:
        host.run(f"printf '%s' '{original}' | sudo tee /etc/wsl.conf >/dev/null")
