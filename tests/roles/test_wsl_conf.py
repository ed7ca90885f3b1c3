"""The wsl role's wsl.conf edits, run by the real ansible-playbook against this machine (connection local,
the file in a temporary folder): a systemd that is already on, however it is spaced, is no change, so no
false "ACTION NEEDED" restart; the Windows drives (DrvFs) are made the default user's alone and Windows
interop is turned off (issue 19: the whisper account cannot act as the Windows user), keeping the user's
own mount options; and a DrvFs mount still open to other accounts stops the play once nothing is pending."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from ansible_run import ansible_playbook, run_playbook

REPO = Path(__file__).resolve().parents[2]
# What the systemd tests leave alone (issue 19's settings have tests of their own below).
SYSTEMD_ONLY = {"wsl_drvfs_private": False, "wsl_disable_interop": False}


def _setup(tmp_path: Path, text: str | None, extra: dict) -> tuple[Path, dict]:
    conf = tmp_path / "wsl.conf"
    if text is not None:
        conf.write_text(text)
    (tmp_path / "hosts.yml").write_text(
        f"all:\n  hosts:\n    box: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}\n"
    )
    (tmp_path / "play.yml").write_text("- name: Only wsl\n  hosts: box\n  roles: [wsl]\n")
    variables = {
        "wsl_force": True,
        "wsl_require_systemd": False,
        "wsl_conf_path": str(conf),
        "wsl_lib_dir": str(tmp_path),
        "wsl_drvfs_mount": str(tmp_path / "no-such-mount"),
        **extra,
    }
    return conf, variables


def run_wsl_role(tmp_path: Path, text: str | None, **extra) -> tuple[str, str]:
    conf, variables = _setup(tmp_path, text, extra)
    out = run_playbook(tmp_path / "hosts.yml", tmp_path / "play.yml", variables)
    return out, conf.read_text()


def run_wsl_role_failing(tmp_path: Path, text: str | None, **extra) -> str:
    """The same run, expected to fail; its output."""
    _, variables = _setup(tmp_path, text, extra)
    result = ansible_playbook(tmp_path / "hosts.yml", tmp_path / "play.yml", variables)
    assert result.returncode != 0, result.stdout
    return result.stdout + result.stderr


def setting(text: str, section: str, key: str) -> str | None:
    """The last value of `key` in `section` (quotes dropped), as WSL reads an ini file; None if absent."""
    found, current = None, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1].strip().lower()
        elif current == section and "=" in stripped and not stripped.startswith(("#", ";")):
            name, value = stripped.split("=", 1)
            if name.strip().lower() == key:
                found = value.strip().strip('"')
    return found


@pytest.mark.parametrize("text", ["[boot]\nsystemd=true\n", "[boot]\nsystemd = true\n", "[boot]\n  SYSTEMD=True\n"])
def test_systemd_already_on_is_no_change(tmp_path, text):
    out, after = run_wsl_role(tmp_path, text, **SYSTEMD_ONLY)
    assert after == text
    assert "changed=0" in out and "ACTION NEEDED" not in out


@pytest.mark.parametrize(
    "text",
    [
        None,
        "[boot]\nsystemd=false\n",
        "[network]\nsystemd=true\n[boot]\ncommand=x\n",  # systemd under another section does not count
    ],
)
def test_systemd_off_or_missing_is_turned_on_and_says_so(tmp_path, text):
    out, after = run_wsl_role(tmp_path, text, **SYSTEMD_ONLY)
    assert "changed=1" in out and "ACTION NEEDED" in out
    boot = after.split("[boot]", 1)[1].split("[", 1)[0]
    assert "systemd = true" in boot
    if text and "command=x" in text:
        assert "[network]\nsystemd=true\n" in after and "command=x" in boot


# --- issue 19: the service account cannot act as the Windows user --------------------------------------


def test_by_default_the_windows_drives_are_private_and_interop_is_off(tmp_path):
    out, after = run_wsl_role(tmp_path, "[boot]\nsystemd=true\n")
    assert setting(after, "automount", "options") == "umask=077"
    assert setting(after, "interop", "enabled") == "false"
    assert after.startswith("[boot]\nsystemd=true\n")
    assert "changed=2" in out
    # WSL reads the file only when it starts: the play says so, and what changed.
    assert "ACTION NEEDED" in out and "[automount] options" in out and "[interop] enabled" in out
    out, again = run_wsl_role(tmp_path, None)  # the second run changes nothing
    assert again == after and "changed=0" in out and "ACTION NEEDED" not in out


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # The user's own options stay; a mask they set keeps every bit it had and gains group and other.
        ('"metadata,fmask=111"', "metadata,fmask=177,umask=077"),
        ("metadata,umask=22,dmask=0", "metadata,umask=077,dmask=077"),
        ('"uid=1000,gid=1000,case=off"', "uid=1000,gid=1000,case=off,umask=077"),
        ('""', "umask=077"),
    ],
)
def test_the_users_mount_options_are_kept_and_made_private(tmp_path, options, expected):
    text = f"[automount]\nenabled = true\noptions = {options}\n\n[boot]\nsystemd=true\n"
    out, after = run_wsl_role(tmp_path, text, wsl_disable_interop=False)
    assert setting(after, "automount", "options") == expected
    assert setting(after, "automount", "enabled") == "true" and setting(after, "boot", "systemd") == "true"
    assert "changed=1" in out and "ACTION NEEDED" in out


@pytest.mark.parametrize(
    "text",
    [
        '[automount]\noptions = "metadata,umask=077"\n[interop]\nenabled = false\n',
        "[automount]\noptions=umask=0077,fmask=7177\n[interop]\nenabled=False\n",  # as private, or more
        '[interop]\nenabled = "false"\n[automount]\noptions = "case=dir,umask=77,dmask=77,fmask=177"\n',
    ],
)
def test_drives_already_private_and_interop_already_off_are_no_change(tmp_path, text):
    text = "[boot]\nsystemd=true\n" + text
    out, after = run_wsl_role(tmp_path, text)
    assert after == text
    assert "changed=0" in out and "ACTION NEEDED" not in out


def test_turned_off_the_settings_are_left_as_the_user_has_them(tmp_path):
    text = "[boot]\nsystemd=true\n[automount]\noptions = metadata\n[interop]\nenabled = true\n"
    out, after = run_wsl_role(tmp_path, text, **SYSTEMD_ONLY)
    assert after == text and "changed=0" in out


def test_a_drive_still_open_to_other_accounts_stops_the_play(tmp_path):
    """Once wsl.conf is as the role wants and no restart is pending, the mount itself must show it."""
    mount = tmp_path / "c"
    mount.mkdir()
    mount.chmod(0o777)
    text = '[boot]\nsystemd=true\n[automount]\noptions = "umask=077"\n[interop]\nenabled = false\n'
    out = run_wsl_role_failing(tmp_path, text, wsl_drvfs_mount=str(mount))
    assert re.search(r"is mode 0?777", out) and "wsl --shutdown" in out
    mount.chmod(0o700)
    out, _ = run_wsl_role(tmp_path, text, wsl_drvfs_mount=str(mount))
    assert "changed=0" in out


def test_a_drive_still_open_is_no_failure_while_the_restart_is_pending(tmp_path):
    mount = tmp_path / "c"
    mount.mkdir()
    mount.chmod(0o777)
    out, _ = run_wsl_role(tmp_path, "[boot]\nsystemd=true\n", wsl_drvfs_mount=str(mount))
    assert "ACTION NEEDED" in out  # the options apply at WSL's next start, which the play asks for
