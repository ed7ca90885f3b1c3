"""The windows_wsl role's controller-side decisions, rendered by the real ansible-playbook from an
inventory like a user's: which WSL host the PC runs, which ports it opens, the .wslconfig keys it owns,
the keep-alive script for each networking mode, and what it decides from its look at the PC (stop, and
why; what a mode switch removes; the task's logon type). The probe's output is given here: the Windows
modules themselves need a Windows host and have not run here (see roles/windows_wsl/README.md)."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import pytest
from ansible_run import ansible_playbook, run_playbook
from test_windows_contract import powershell_errors
from windows_probe import READY_PC as PROBE
from windows_probe import hyperv_rule

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
              'merged': users | windows_wsl_merge(windows_wsl_settings), 'problems': windows_wsl_problems,
              'stale': windows_wsl_stale, 'logon_type': windows_wsl_logon_type, 'wsl': windows_wsl_exe,
              'listen': windows_wsl_portproxy_address, 'hyperv_fix': windows_wsl_hyperv_fix,
              'scopes': windows_wsl_firewall_scopes,
              'remotes': windows_wsl_allowed_remote_addresses, 'profiles': windows_wsl_firewall_profiles} | to_json }}
"""


def render(tmp_path: Path, probe: dict | None = None, **extra) -> tuple[dict, str]:
    (tmp_path / "hosts.yml").write_text(INVENTORY % {"python": sys.executable})
    (tmp_path / "play.yml").write_text(PLAY % {"repo": REPO, "role": ROLE})
    users = base64.b64encode(b"[wsl2]\r\nmemory=8GB\r\n").decode()
    extra_vars = {"out": str(tmp_path), "users": users, "windows_wsl_probe": {"result": {**PROBE, **(probe or {})}}}
    extra_vars.update(extra)
    run_playbook(
        tmp_path / "hosts.yml",
        tmp_path / "play.yml",
        extra_vars,
        env={"ANSIBLE_FILTER_PLUGINS": str(ROLE / "filter_plugins")},
    )
    return json.loads((tmp_path / "decisions.json").read_text()), (tmp_path / "wsl-keepalive.ps1").read_text()


def fixes(decisions: dict) -> list[int]:
    """The ports whose Hyper-V rule the role would make, over every scope."""
    return [port for scope in decisions["hyperv_fix"] for port in scope["fix"]]


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
    assert decisions["problems"] == []
    assert decisions["stale"] == {"hyperv_rules": [], "firewall_rules": [], "portproxy": []}
    assert decisions["logon_type"] == "s4u"  # no password given
    assert decisions["wsl"] == "C:\\Program Files\\WSL\\wsl.exe"  # the probe's pick, which the handlers use
    assert powershell_errors(script) == []


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
    joined = re.sub(r"\s*`\n\s*", " ", script)  # PowerShell's line continuations
    assert (
        "portproxy add v4tov4 listenport=$Port listenaddress=$ListenAddress connectport=$Port connectaddress=$Address"
        in joined
    )
    # On the PC's LAN address, the WSL host's (where the clients and Ansible reach it), not on 0.0.0.0.
    assert decisions["listen"] == "192.168.1.50"
    assert "$ListenAddress = '192.168.1.50'" in script and "0.0.0.0" not in script
    # The portproxy follows WSL's address each time the loop starts the distribution, before attaching.
    loop = script[script.index("while ($true)") :]
    assert loop.index("Update-PortProxy") < loop.index("sleep infinity")
    assert "if ($LASTEXITCODE -ne 0)" in script[script.index("portproxy add") :]
    assert "$Distribution = 'Debian'" in script
    assert powershell_errors(script) == []


def test_the_keep_alive_starts_wsl_again_whenever_it_stops(tmp_path):
    """Task Scheduler restarts an action only when it fails to start; the script itself loops."""
    _, script = render(tmp_path)
    loop = script[script.index("while ($true) {") :]
    attach = loop.index("& $Wsl -d $Distribution --exec /bin/sleep infinity")
    assert attach < loop.index("Start-Sleep -Seconds $RetrySeconds")
    assert "catch {" in loop  # an error in one round is logged, and the next round comes
    # The Store WSL's wsl.exe first, System32's stub only when there is no other.
    assert script.index("'WSL\\wsl.exe'") < script.index("'System32\\wsl.exe'")
    assert "$env:WSL_UTF8 = '1'" in script
    # Native commands' errors come from their exit codes: 'Stop' would end the loop at a stderr line.
    assert "$ErrorActionPreference = 'Continue'" in script
    assert "-ErrorAction Stop" not in script and "$ErrorActionPreference = 'Stop'" not in script


def test_a_pc_that_cannot_run_it_is_stopped_with_the_fixes(tmp_path):
    decisions, _ = render(
        tmp_path,
        probe={"admin": False, "build": 19045, "hyperv_firewall": False, "distributions": ["Debian"]},
        windows_wsl_ports=[8010, 22],
    )
    problems = " ".join(decisions["problems"])
    assert len(decisions["problems"]) == 4
    assert "PC\\me is not an elevated administrator" in problems
    assert "no WSL distribution named Ubuntu-24.04" in problems
    assert "this PC is build 19045" in problems
    assert "Windows' own OpenSSH Server listens on port 22" in problems and "ansible_port: 2222 on gpu-b" in problems


def test_switching_from_nat_to_mirrored_removes_the_nat_state(tmp_path):
    old = {"listen_address": "0.0.0.0", "connect_address": "172.28.1.2"}
    decisions, _ = render(
        tmp_path,
        probe={
            "firewall_rules": ["whisperlab WSL port 2222", "whisperlab WSL port 8010"],
            "portproxy": [{**old, "listen_port": port, "connect_port": port} for port in (8010, 2222, 3389)],
            "portproxy_record": [8010, 2222],
        },
    )
    assert decisions["stale"] == {
        "hyperv_rules": [],
        "firewall_rules": ["whisperlab WSL port 2222", "whisperlab WSL port 8010"],
        "portproxy": [{"address": "0.0.0.0", "port": 2222}, {"address": "0.0.0.0", "port": 8010}],  # 3389: not ours
    }


def test_switching_from_mirrored_to_nat_removes_the_hyper_v_rules(tmp_path):
    decisions, _ = render(
        tmp_path,
        probe={"hyperv_rules": [hyperv_rule(8010), hyperv_rule(2222)]},
        windows_wsl_networking_mode="nat",
        windows_wsl_task_password="from-vault",  # noqa: S106 (a made-up one)
    )
    assert decisions["stale"]["hyperv_rules"] == ["whisperlab-wsl-2222", "whisperlab-wsl-8010"]
    assert decisions["logon_type"] == "password"


def test_the_hyper_v_rules_are_made_for_the_lan_on_private_networks(tmp_path):
    """Issue 19: a rule open to every profile and address (what the role made before) is made again."""
    decisions, _ = render(tmp_path)
    assert decisions["remotes"] == ["LocalSubnet"] and decisions["profiles"] == ["private", "domain"]
    assert fixes(decisions) == [8010, 2222]  # none there yet
    old = hyperv_rule(8010, profiles="Any", remote_addresses=["Any"])
    decisions, _ = render(tmp_path, probe={"hyperv_rules": [old, hyperv_rule(2222)]})
    assert fixes(decisions) == [8010]
    subnet = ["192.168.1.0/255.255.255.0"]  # how Windows may write 192.168.1.0/24 back
    decisions, _ = render(
        tmp_path,
        probe={"hyperv_rules": [hyperv_rule(port, remote_addresses=subnet) for port in (8010, 2222)]},
        windows_wsl_allowed_remote_addresses=["192.168.1.0/24"],
    )
    assert fixes(decisions) == []


def _wyoming_on(tmp_path: Path) -> None:
    (tmp_path / "host_vars").mkdir(exist_ok=True)
    (tmp_path / "host_vars" / "gpu-b.yml").write_text(json.dumps({"whisper_server_wyoming": True}))


def test_the_wyoming_port_is_let_in_from_home_assistant_alone(tmp_path):
    """Issue 22: Wyoming has no key, so its port's rule admits the Home Assistant host, not the LAN."""
    _wyoming_on(tmp_path)
    decisions, _ = render(tmp_path, whisperlab_home_assistant_addresses=["192.168.1.20"])
    assert decisions["ports"] == [8010, 2222, 10300]
    assert decisions["problems"] == []
    assert decisions["scopes"] == [
        {"ports": [8010, 2222], "addresses": ["LocalSubnet"]},
        {"ports": [10300], "addresses": ["192.168.1.20"]},
    ]
    assert [(s["fix"], s["addresses"]) for s in decisions["hyperv_fix"]] == [
        ([8010, 2222], ["LocalSubnet"]),
        ([10300], ["192.168.1.20"]),
    ]
    # A Wyoming rule open to the LAN (what a LAN-wide rule would be) differs, and is made again.
    rules = [hyperv_rule(8010), hyperv_rule(2222), hyperv_rule(10300)]
    decisions, _ = render(tmp_path, probe={"hyperv_rules": rules}, whisperlab_home_assistant_addresses=["192.168.1.20"])
    assert fixes(decisions) == [10300]
    decisions, script = render(
        tmp_path, windows_wsl_networking_mode="nat", whisperlab_home_assistant_addresses=["192.168.1.20"]
    )
    assert "$Ports = @(8010, 2222, 10300)" in script  # forwarded like the others


def test_the_wyoming_port_without_a_home_assistant_host_is_refused(tmp_path):
    _wyoming_on(tmp_path)
    decisions, _ = render(tmp_path)
    assert any("windows_wsl_wyoming_remote_addresses is empty" in p for p in decisions["problems"])
    decisions, _ = render(tmp_path, whisperlab_home_assistant_addresses=["homeassistant.local"])
    assert any("'homeassistant.local' is not an address" in p for p in decisions["problems"])
    # The LAN's keywords and ranges open a port with no key too widely: the host or its subnet alone.
    for wide in ("LocalSubnet", "Any", "192.168.1.10-192.168.1.20"):
        decisions, _ = render(tmp_path, whisperlab_home_assistant_addresses=[wide])
        assert any(f"{wide!r} is wider than a host or a subnet" in p for p in decisions["problems"]), wide


def test_no_wyoming_port_by_default(tmp_path):
    decisions, _ = render(tmp_path)
    assert decisions["scopes"][1] == {"ports": [], "addresses": []}


@pytest.mark.parametrize(
    ("hosts", "probe", "expected"),
    [
        ({}, {}, "192.168.1.50"),  # the WSL host's address
        ({"gpu-b": "wsl-box.lan", "pc": "192.168.1.51"}, {}, "192.168.1.51"),  # else the PC's own
        ({"gpu-b": "wsl-box.lan"}, {"connected_address": "192.168.1.52"}, "192.168.1.52"),  # else found there
    ],
)
def test_the_portproxy_listens_on_the_address_the_lan_uses(tmp_path, hosts, probe, expected):
    hostvars = {"gpu-b": {"ansible_host": hosts.get("gpu-b", "192.168.1.50")}}
    if "pc" in hosts:
        hostvars["pc"] = {"ansible_host": hosts["pc"]}
    (tmp_path / "host_vars").mkdir()
    for host, values in hostvars.items():
        (tmp_path / "host_vars" / f"{host}.yml").write_text(json.dumps(values))
    decisions, script = render(tmp_path, probe=probe, windows_wsl_networking_mode="nat")
    assert decisions["listen"] == expected
    assert f"$ListenAddress = '{expected}'" in script
    decisions, _ = render(tmp_path, windows_wsl_networking_mode="nat", windows_wsl_listen_address="10.9.8.7")
    assert decisions["listen"] == "10.9.8.7"
    assert any("10.9.8.7 is not an address of this PC" in problem for problem in decisions["problems"])


@pytest.mark.parametrize("mode", ["bridged", ""])
def test_an_unknown_mode_is_refused_by_the_argument_spec(tmp_path, mode):
    """The role's argument_specs (checked on the controller before any task) refuse it."""
    (tmp_path / "hosts.yml").write_text(INVENTORY % {"python": sys.executable})
    (tmp_path / "play.yml").write_text(
        f"- hosts: pc\n  gather_facts: false\n  roles: [{{role: windows_wsl, windows_wsl_networking_mode: '{mode}'}}]\n"
    )
    result = ansible_playbook(tmp_path / "hosts.yml", tmp_path / "play.yml")
    assert result.returncode != 0
    assert "windows_wsl_networking_mode" in result.stdout and "mirrored, nat" in result.stdout
