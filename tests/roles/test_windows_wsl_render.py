"""The windows_wsl role's controller-side decisions, rendered by the real ansible-playbook from an
inventory like a user's: which WSL host the PC runs, which ports it opens, the .wslconfig keys it owns
and the keep-alive script for each networking mode. The Windows modules themselves need a Windows host
and have not run here (see roles/windows_wsl/README.md)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_run import run_playbook

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "windows_wsl"

INVENTORY = """
all:
  vars: {ansible_connection: local, ansible_python_interpreter: %(python)s}
  children:
    windows:
      hosts:
        pc: {ansible_user: me}
        other-pc: {ansible_user: me}
    whisper_servers:
      hosts:
        gpu-a: {ansible_host: 192.168.1.40, ansible_port: 2222, wsl_windows_host: other-pc}
        gpu-b: {ansible_host: 192.168.1.50, ansible_port: 2222, whisper_server_port: 8010, wsl_windows_host: pc}
"""

PLAY = """
- name: Render what windows_wsl decides, without Windows
  hosts: pc
  gather_facts: false
  vars_files:
    - %(repo)s/roles/whisperlab/defaults/main.yml
    - %(role)s/defaults/main.yml
    - %(role)s/vars/main.yml
  tasks:
    - name: The keep-alive script
      ansible.builtin.template:
        src: %(role)s/templates/wsl-keepalive.ps1.j2
        dest: "{{ out }}/wsl-keepalive.ps1"
        mode: "0644"
    - name: The decisions
      ansible.builtin.copy:
        dest: "{{ out }}/decisions.json"
        mode: "0644"
        content: >-
          {{ {'host': windows_wsl_host, 'ports': windows_wsl_ports, 'settings': windows_wsl_settings,
              'merged': users | windows_wsl_merge(windows_wsl_settings)} | to_json }}
"""


def render(tmp_path: Path, **extra) -> tuple[dict, str]:
    (tmp_path / "hosts.yml").write_text(INVENTORY % {"python": sys.executable})
    (tmp_path / "play.yml").write_text(PLAY % {"repo": REPO, "role": ROLE})
    users = base64.b64encode(b"[wsl2]\r\nmemory=8GB\r\n").decode()
    extra_vars = {"out": str(tmp_path), "users": users, **extra}
    run_playbook(
        tmp_path / "hosts.yml",
        tmp_path / "play.yml",
        extra_vars,
        env={"ANSIBLE_FILTER_PLUGINS": str(ROLE / "filter_plugins")},
    )
    return json.loads((tmp_path / "decisions.json").read_text()), (tmp_path / "wsl-keepalive.ps1").read_text()


def test_mirrored_defaults(tmp_path):
    decisions, script = render(tmp_path)
    assert decisions["host"] == "gpu-b"  # the server whose wsl_windows_host names this PC
    assert decisions["ports"] == [8010, 2222]  # its server port and its SSH port
    assert decisions["settings"] == {
        "wsl2": {"networkingMode": "mirrored", "vmIdleTimeout": -1},
        "general": {"instanceIdleTimeout": -1},
    }
    assert decisions["merged"] == (
        "[wsl2]\r\nmemory=8GB\r\nnetworkingMode=mirrored\r\nvmIdleTimeout=-1\r\n\r\n[general]\r\ninstanceIdleTimeout=-1\r\n"
    )
    assert "$Distribution = 'Ubuntu-24.04'" in script
    assert "--exec /bin/sleep infinity" in script
    assert "portproxy" not in script  # mirrored mode needs none


def test_nat_mode_keeps_the_portproxy_current(tmp_path):
    decisions, script = render(
        tmp_path,
        windows_wsl_networking_mode="nat",
        windows_wsl_distribution="Debian",
        windows_wsl_extra_settings={"wsl2": {"memory": "12GB"}},
    )
    assert decisions["settings"]["wsl2"] == {"networkingMode": "nat", "vmIdleTimeout": -1, "memory": "12GB"}
    assert "memory=12GB" in decisions["merged"] and "memory=8GB" not in decisions["merged"]
    assert "$Ports = @(8010, 2222)" in script
    assert (
        "portproxy add v4tov4 listenport=$Port listenaddress=0.0.0.0 connectport=$Port connectaddress=$Address"
        in script
    )
    # The portproxy is refreshed before the script attaches to the distribution for good.
    assert script.index("portproxy add") < script.index("sleep infinity")
    assert "$Distribution = 'Debian'" in script


@pytest.mark.parametrize("mode", ["bridged", ""])
def test_an_unknown_mode_is_refused_by_the_argument_spec(tmp_path, mode):
    """The role's argument_specs (checked on the controller before any task) refuse it."""
    (tmp_path / "hosts.yml").write_text(INVENTORY % {"python": sys.executable})
    (tmp_path / "play.yml").write_text(
        f"- hosts: pc\n  gather_facts: false\n  roles: [{{role: windows_wsl, windows_wsl_networking_mode: '{mode}'}}]\n"
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            str(tmp_path / "hosts.yml"),
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode != 0
    assert "windows_wsl_networking_mode" in result.stdout and "mirrored, nat" in result.stdout
