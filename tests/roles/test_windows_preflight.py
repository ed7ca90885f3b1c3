"""The windows_wsl role's decisions from its look at the PC (a controller-side filter, so they run here):
when to stop and with which fix, and which of whisperlab's own rules and portproxy entries a mode switch or
a port no longer forwarded leaves behind. What the probe reads on Windows has not run here (see the role's
README); these take its output as given."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from windows_probe import READY_PC, WSL_CREATOR, hyperv_rule

PLUGIN = Path(__file__).resolve().parents[2] / "roles" / "windows_wsl" / "filter_plugins" / "preflight.py"
spec = importlib.util.spec_from_file_location("preflight", PLUGIN)
preflight = importlib.util.module_from_spec(spec)
spec.loader.exec_module(preflight)

# A Windows 11 23H2 PC with the Store WSL, the distribution, and Windows' own sshd on 22.
HEALTHY = {**READY_PC, "distributions": ["Ubuntu-24.04", "docker-desktop"]}


def problems(mode="mirrored", ports=(8000, 2222), boot_check=False, **probe):
    return preflight.windows_wsl_preflight(
        {**HEALTHY, **probe}, mode, "Ubuntu-24.04", list(ports), "gpu-pc", boot_check, "192.168.1.50"
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
    [("mirrored", "WSL shares the PC's address"), ("nat", "a portproxy on the PC's port 22 cannot forward it")],
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


def stale(mode, ports=(8000, 2222), listen="192.168.1.50", **probe):
    return preflight.windows_wsl_cleanup({**HEALTHY, **probe}, mode, list(ports), listen)


def at(*pairs):
    return [{"address": address, "port": port} for address, port in pairs]


def test_nat_to_mirrored_removes_the_portproxy_and_defender_rules():
    found = stale(
        "mirrored",
        firewall_rules=["whisperlab WSL port 2222", "whisperlab WSL port 8000"],
        portproxy=[
            proxy(8000),
            proxy(2222, address="192.168.1.50"),
            proxy(3389, to="10.0.0.5"),
            proxy(8000, address="127.0.0.1"),
        ],
    )
    # The listeners that would keep the server and WSL's sshd from binding go; the user's own stay.
    assert found == {
        "hyperv_rules": [],
        "firewall_rules": ["whisperlab WSL port 2222", "whisperlab WSL port 8000"],
        "portproxy": at(("192.168.1.50", 2222), ("0.0.0.0", 8000)),
    }


def test_mirrored_to_nat_removes_the_hyper_v_rules_only():
    found = stale("nat", hyperv_rules=[hyperv_rule(8000), hyperv_rule(2222)], portproxy=[proxy(8000, "192.168.1.50")])
    assert found == {
        "hyperv_rules": ["whisperlab-wsl-2222", "whisperlab-wsl-8000"],
        "firewall_rules": [],
        "portproxy": [],
    }


def test_a_port_no_longer_forwarded_is_removed_in_its_own_mode():
    found = stale(
        "nat",
        ports=(8010, 2222),
        firewall_rules=["whisperlab WSL port 8000", "whisperlab WSL port 8010"],
        portproxy=[proxy(8000, "192.168.1.50"), proxy(8010, "192.168.1.50"), proxy(2222, "192.168.1.50"), proxy(9000)],
        portproxy_record=["192.168.1.50 8000", "192.168.1.50 2222"],
    )
    # 8000 was recorded as ours; 9000 never was, so it is the user's.
    assert found == {
        "hyperv_rules": [],
        "firewall_rules": ["whisperlab WSL port 8000"],
        "portproxy": at(("192.168.1.50", 8000)),
    }
    found = stale("mirrored", ports=(8010,), hyperv_rules=[hyperv_rule(8000), hyperv_rule(8010)])
    assert found["hyperv_rules"] == ["whisperlab-wsl-8000"]


def test_nothing_is_removed_when_nothing_is_left_over():
    empty = {"hyperv_rules": [], "firewall_rules": [], "portproxy": []}
    assert stale("mirrored", hyperv_rules=[hyperv_rule(8000), hyperv_rule(2222)]) == empty
    assert stale("nat", firewall_rules=["whisperlab WSL port 8000"], portproxy=[proxy(8000, "192.168.1.50")]) == empty
    assert preflight.windows_wsl_cleanup(None, "nat", [8000], "192.168.1.50") == empty


# --- issue 19: only the LAN, only on private networks, only the LAN address --------------------------


def test_an_older_runs_listener_on_every_address_goes_in_nat_mode_too():
    """Earlier runs listened on 0.0.0.0 (and wrote bare ports in the record): NAT mode now listens on the
    PC's LAN address only, so those go, and so does one on an address the PC no longer uses."""
    found = stale(
        "nat",
        portproxy=[proxy(8000), proxy(2222), proxy(2222, "192.168.1.50"), proxy(8000, "192.168.1.77")],
        portproxy_record=[8000, 2222, "192.168.1.77 8000"],
    )
    assert found["portproxy"] == at(("0.0.0.0", 2222), ("0.0.0.0", 8000), ("192.168.1.77", 8000))


LAN = ["LocalSubnet"]
PRIVATE = ["private", "domain"]


def fix(rules, ports=(8000, 2222), profiles=PRIVATE, remotes=LAN):
    probe = {**HEALTHY, "hyperv_rules": rules}
    return preflight.windows_wsl_hyperv_fix(probe, list(ports), list(profiles), list(remotes), WSL_CREATOR)


def test_a_hyper_v_rule_as_the_role_makes_it_is_left_alone():
    assert fix([hyperv_rule(8000), hyperv_rule(2222)]) == []
    # However Windows writes the same thing back: profile order and case, the profiles as a number, a
    # subnet with a mask, the creator id without braces.
    same = hyperv_rule(
        8000,
        profiles="Private, Domain",
        remote_addresses=["192.168.1.0/255.255.255.0", "localsubnet"],
        vm_creator_id=WSL_CREATOR.strip("{}").lower(),
    )
    assert fix([same], ports=(8000,), remotes=["LocalSubnet", "192.168.1.0/24"]) == []
    assert fix([hyperv_rule(8000, profiles="3")], ports=(8000,)) == []
    assert fix([hyperv_rule(8000, protocol="6")], ports=(8000,)) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"profiles": "Any"},  # open on public Wi-Fi too: what the role made before issue 19
        {"profiles": "Domain, Private, Public"},
        {"profiles": "Private"},
        {"profiles": "0"},
        {"remote_addresses": ["Any"]},  # from anywhere: what the role made before
        {"remote_addresses": []},
        {"remote_addresses": ["LocalSubnet", "10.0.0.0/8"]},
        {"enabled": "False"},
        {"action": "Block"},
        {"direction": "Outbound"},
        {"local_ports": ["8001"]},
        {"protocol": "UDP"},
        {"vm_creator_id": "{00000000-0000-0000-0000-000000000000}"},
    ],
)
def test_a_hyper_v_rule_that_differs_is_made_again(changes):
    assert fix([hyperv_rule(8000, **changes), hyperv_rule(2222)]) == [8000]


def test_a_missing_hyper_v_rule_is_made():
    assert fix([hyperv_rule(2222)]) == [8000]
    assert fix([]) == [8000, 2222]
    assert preflight.windows_wsl_hyperv_fix(None, [8000], PRIVATE, LAN, WSL_CREATOR) == [8000]


def test_other_scopes_are_compared_as_asked():
    rule = hyperv_rule(8000, remote_addresses=["192.168.1.60", "192.168.1.61-192.168.1.70"], profiles="Private")
    assert (
        fix([rule], ports=(8000,), profiles=["Private"], remotes=["192.168.1.60/32", "192.168.1.61-192.168.1.70"]) == []
    )
    assert fix([rule], ports=(8000,), profiles=["private"], remotes=["192.168.1.60"]) == [8000]


def scoped(mode="nat", listen="192.168.1.50", profiles=PRIVATE, remotes=LAN, **probe):
    return preflight.windows_wsl_preflight(
        {**HEALTHY, **probe},
        mode,
        "Ubuntu-24.04",
        [8000, 2222],
        "gpu-pc",
        False,
        listen_address=listen,
        profiles=list(profiles),
        remote_addresses=list(remotes),
    )


def test_the_lan_address_and_the_scopes_pass_when_they_fit_this_pc():
    assert scoped() == []
    assert scoped("mirrored", listen="") == []  # mirrored mode has no portproxy
    assert scoped(remotes=["192.168.1.0/24", "LocalSubnet4", "fd00::/8", "10.0.0.1-10.0.0.9"]) == []


def test_nat_mode_needs_a_lan_address_of_this_pc():
    [message] = scoped(listen="")
    assert "windows_wsl_listen_address" in message
    [message] = scoped(listen="192.168.1.99")
    assert "192.168.1.99 is not an address of this PC" in message and "192.168.1.50" in message
    assert "windows_wsl_listen_address" in message


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"profiles": ["private", "home"]}, "'home' is not a firewall profile"),
        ({"profiles": []}, "windows_wsl_firewall_profiles is empty"),
        ({"remotes": []}, "windows_wsl_allowed_remote_addresses is empty"),
        ({"remotes": ["LocalSubnet", "the-lan"]}, "'the-lan' is not"),
        ({"remotes": ["192.168.1.300/24"]}, "'192.168.1.300/24' is not"),
    ],
)
def test_a_scope_windows_would_refuse_is_stopped_first(scope, expected):
    [message] = scoped("mirrored", **scope)
    assert expected in message
