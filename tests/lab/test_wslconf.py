"""Lab-only: the wsl role edits /etc/wsl.conf as an ini file and keeps the user's other settings."""

from __future__ import annotations

GROUP = "whisper_servers"

USERS_OWN = "[network]\ngenerateResolvConf = false\n\n[boot]\nsystemd = false\ncommand = echo hello\n"


def test_other_settings_survive(host, run_role):
    original = host.file("/etc/wsl.conf").content_string
    try:
        host.run(f"printf '%s' '{USERS_OWN}' | sudo tee /etc/wsl.conf >/dev/null")
        # systemd is PID 1 here, so the role's assert passes and only the file changes.
        run_role("whisper_servers", "wsl")
        lines = [line.replace(" ", "") for line in host.file("/etc/wsl.conf").content_string.splitlines()]
        assert "generateResolvConf=false" in lines
        assert "command=echohello" in lines
        assert "systemd=true" in lines and "systemd=false" not in lines
        assert lines.count("[boot]") == 1
    finally:
        host.run(f"printf '%s' '{original}' | sudo tee /etc/wsl.conf >/dev/null")
