"""The windows_wsl role's decisions from its look at the PC (a controller-side filter, so they run here):
when to stop and with which fix, and which of whisperlab's own rules and portproxy entries a mode switch or
a port no longer forwarded leaves behind. What the probe reads on Windows has not run here (see the role's
README); these take its output as given."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from windows_probe import READY_PC

PLUGIN = Path(__file__).resolve().parents[2] / "roles" / "windows_wsl" / "filter_plugins" / "preflight.py"
spec = importlib.util.spec_from_file_location("preflight", PLUGIN)
preflight = importlib.util.module_from_spec(spec)
spec.loader.exec_module(preflight)

# A Windows 11 23H2 PC with the Store WSL, the distribution, and Windows' own sshd on 22.
HEALTHY = {**READY_PC, "distributions": ["Ubuntu-24.04", "docker-desktop"]}


def problems(mode="mirrored", ports=(8000, 2222), boot_check=False, **probe):
    return preflight.windows_wsl_preflight(
        {**HEALTHY, **probe}, mode, "Ubuntu-24.04", list(ports), "gpu-pc", boot_check
    )


def proxy(port, address="0.0.0.0", to="172.28.1.2"):
    return {"listen_address": address, "listen_port": port, "connect_address": to, "connect_port": port}


@pytest.mark.parametrize("mode", ["mirrored", "nat"])
def test_a_ready_pc_passes(mode):
    assert problems(mode) == []


def test_a_user_who_is_not_an_elevated_administrator_is_stopped():
    [message] = problems(admin=False)
    assert message.startswith("PC\\me is not an elevated administrator")
    assert "administrators_authorized_keys" in message and "runas works only over WinRM" in message


def test_mirrored_mode_needs_windows_11_22h2():
    [message] = problems(build=19045, hyperv_firewall=False)
    assert "build 22621" in message and "build 19045" in message and "windows_wsl_networking_mode: nat" in message
    assert problems("nat", build=19045, hyperv_firewall=False) == []  # Windows 10 in NAT mode is fine
    assert problems(build=22621) == []


def test_mirrored_mode_without_the_hyper_v_firewall_cmdlets_is_stopped():
    [message] = problems(hyperv_firewall=False)
    assert "New-NetFirewallHyperVRule" in message


def test_a_missing_distribution_names_what_is_there():
    [message] = problems(distributions=["Debian"])
    assert "no WSL distribution named Ubuntu-24.04" in message and "shows: Debian" in message
    assert "wsl --install -d Ubuntu-24.04" in message and "windows_wsl_distribution" in message
    assert problems(distributions=["ubuntu-24.04"]) == []  # WSL matches names regardless of case


def test_no_distributions_at_all_quotes_wsl():
    [message] = problems(distributions=[], list_error="Windows Subsystem for Linux has no installed distributions.")
    assert "shows: none (wsl --list said: Windows Subsystem for Linux has no installed distributions.)" in message


def test_no_wsl_at_all():
    [message] = problems(wsl="", distributions=[])
    assert message.startswith("WSL is not installed")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("mirrored", "WSL shares the PC's address"), ("nat", "a portproxy on 0.0.0.0:22 cannot forward it")],
)
def test_wsl_sshd_on_windows_own_ssh_port_is_stopped(mode, expected):
    [message] = problems(mode, ports=(8000, 22))
    assert "Windows' own OpenSSH Server listens on port 22" in message and expected in message
    assert "Port 2222" in message and "ansible_port: 2222 on gpu-pc" in message


def test_windows_sshd_on_another_port_is_read_from_its_config():
    assert problems(ports=(8000, 22), sshd_ports=[2200]) == []
    assert len(problems(ports=(8000, 2200), sshd_ports=[2200])) == 1
    assert problems(ports=(8000, 22), sshd_ports=[], sshd_start="") == []  # no Windows sshd (WinRM)


def test_every_problem_is_reported_at_once():
    found = problems(admin=False, build=19045, hyperv_firewall=False, distributions=[], ports=(8000, 22))
    assert len(found) == 4


def test_the_boot_check_needs_sshd_to_start_on_its_own():
    [message] = problems(boot_check=True, sshd_start="Manual")
    assert "Set-Service sshd -StartupType Automatic" in message
    assert problems(boot_check=False, sshd_start="Manual") == []


def stale(mode, ports=(8000, 2222), **probe):
    return preflight.windows_wsl_cleanup({**HEALTHY, **probe}, mode, list(ports))


def test_nat_to_mirrored_removes_the_portproxy_and_defender_rules():
    found = stale(
        "mirrored",
        firewall_rules=["whisperlab WSL port 2222", "whisperlab WSL port 8000"],
        portproxy=[proxy(8000), proxy(2222), proxy(3389, to="10.0.0.5"), proxy(8000, address="127.0.0.1")],
    )
    # The listeners that would keep the server and WSL's sshd from binding go; the user's own stay.
    assert found == {
        "hyperv_rules": [],
        "firewall_rules": ["whisperlab WSL port 2222", "whisperlab WSL port 8000"],
        "portproxy_ports": [2222, 8000],
    }


def test_mirrored_to_nat_removes_the_hyper_v_rules_only():
    found = stale("nat", hyperv_rules=["whisperlab-wsl-8000", "whisperlab-wsl-2222"], portproxy=[proxy(8000)])
    assert found == {
        "hyperv_rules": ["whisperlab-wsl-2222", "whisperlab-wsl-8000"],
        "firewall_rules": [],
        "portproxy_ports": [],
    }


def test_a_port_no_longer_forwarded_is_removed_in_its_own_mode():
    found = stale(
        "nat",
        ports=(8010, 2222),
        firewall_rules=["whisperlab WSL port 8000", "whisperlab WSL port 8010"],
        portproxy=[proxy(8000), proxy(8010), proxy(2222), proxy(9000)],
        portproxy_record=[8000, 2222],
    )
    # 8000 was recorded as ours; 9000 never was, so it is the user's.
    assert found == {"hyperv_rules": [], "firewall_rules": ["whisperlab WSL port 8000"], "portproxy_ports": [8000]}
    found = stale("mirrored", ports=(8010,), hyperv_rules=["whisperlab-wsl-8000", "whisperlab-wsl-8010"])
    assert found["hyperv_rules"] == ["whisperlab-wsl-8000"]


def test_nothing_is_removed_when_nothing_is_left_over():
    empty = {"hyperv_rules": [], "firewall_rules": [], "portproxy_ports": []}
    assert stale("mirrored", hyperv_rules=["whisperlab-wsl-8000", "whisperlab-wsl-2222"]) == empty
    assert stale("nat", firewall_rules=["whisperlab WSL port 8000"], portproxy=[proxy(8000), proxy(2222)]) == empty
    assert preflight.windows_wsl_cleanup(None, "nat", [8000]) == empty
