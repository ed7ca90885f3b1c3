"""The wsl role's wsl.conf edit, run by the real ansible-playbook against this machine (connection
local, the file in a temporary folder): a systemd that is already on, however it is spaced, is no
change, so no false "ACTION NEEDED" restart."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ansible_run import run_playbook

REPO = Path(__file__).resolve().parents[2]


def run_wsl_role(tmp_path: Path, text: str | None) -> tuple[str, str]:
    conf = tmp_path / "wsl.conf"
    if text is not None:
        conf.write_text(text)
    (tmp_path / "hosts.yml").write_text(
        f"all:\n  hosts:\n    box: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}\n"
    )
    (tmp_path / "play.yml").write_text("- name: Only wsl\n  hosts: box\n  roles: [wsl]\n")
    extra = {"wsl_force": True, "wsl_require_systemd": False, "wsl_conf_path": str(conf), "wsl_lib_dir": str(tmp_path)}
    out = run_playbook(tmp_path / "hosts.yml", tmp_path / "play.yml", extra)
    return out, conf.read_text()


@pytest.mark.parametrize("text", ["[boot]\nsystemd=true\n", "[boot]\nsystemd = true\n", "[boot]\n  SYSTEMD=True\n"])
def test_systemd_already_on_is_no_change(tmp_path, text):
    out, after = run_wsl_role(tmp_path, text)
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
    out, after = run_wsl_role(tmp_path, text)
    assert "changed=1" in out and "ACTION NEEDED" in out
    boot = after.split("[boot]", 1)[1].split("[", 1)[0]
    assert "systemd = true" in boot
    if text and "command=x" in text:
        assert "[network]\nsystemd=true\n" in after and "command=x" in boot
