"""windows_wsl_preflight, windows_wsl_cleanup and windows_wsl_hyperv_fix: what the role decides from its
look at the PC.

The role's first task reads the PC without changing it (administrator or not, the Windows build, wsl.exe,
the user's distributions, Windows' own sshd, its IPv4 addresses, and the firewall rules and portproxy entries
whisperlab made before, with the Hyper-V rules' properties). The decisions are made here, on the controller,
so that they are plain Python and are tested on Linux (tests/roles/test_windows_preflight.py and
test_windows_wsl_render.py); the PowerShell that follows only carries them out.
"""

from __future__ import annotations

import ipaddress
import re

# Windows 11 22H2, the first build with mirrored networking and the Hyper-V firewall (Microsoft's WSL docs).
MIRRORED_MIN_BUILD = 22621
HYPERV_RULE = re.compile(r"^whisperlab-wsl-(\d+)$")
FIREWALL_RULE = re.compile(r"^whisperlab WSL port (\d+)$")
EVERY_ADDRESS = "0.0.0.0"  # where the portproxy listened before issue 19
PROFILES = ("domain", "private", "public")
# Remote-address keywords that both the Hyper-V rules and the Defender rules take ("*" is Any).
ADDRESS_KEYWORDS = ("any", "localsubnet", "localsubnet4", "localsubnet6")


def _ports(ports) -> list[int]:
    return [int(port) for port in ports]


def _address(token) -> str | None:
    """One remote-address token as the firewall means it, so that what Windows writes back compares equal to
    what was asked ("192.168.1.0/255.255.255.0" is "192.168.1.0/24", "LocalSubnet" is "localsubnet");
    None for a token the firewall would refuse."""
    text = str(token).strip()
    lowered = text.lower()
    if lowered in ("*", "any"):
        return "any"
    if lowered in ADDRESS_KEYWORDS:
        return lowered
    try:
        if "-" in text:
            start, end = (ipaddress.ip_address(part.strip()) for part in text.split("-", 1))
            return f"{start}-{end}"
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return None


def _addresses(tokens) -> frozenset:
    return frozenset(_address(token) for token in tokens or [])


def _profiles(value) -> frozenset[str]:
    """Firewall profiles as a set of names: from a list of names, from Windows' "Domain, Private", or from the
    number behind it (Domain 1, Private 2, Public 4; 0 is Any). All three is Any."""
    if isinstance(value, (list, tuple)):
        names = {str(name).strip().lower() for name in value}
    elif str(value).strip().isdigit():
        bits = int(str(value).strip())
        names = {name for bit, name in zip((1, 2, 4), PROFILES) if bits & bit} or {"any"}
    else:
        names = {name.strip().lower() for name in str(value).split(",") if name.strip()}
    return frozenset({"any"} if names >= set(PROFILES) else names)


def preflight(
    probe: dict,
    mode: str,
    distribution: str,
    ports,
    host: str = "",
    boot_check: bool = False,
    listen_address: str = "",
    profiles=None,
    remote_addresses=None,
    wyoming_addresses=None,
) -> list[str]:
    """Every reason this PC cannot run what the role sets up, each with its fix; [] when there is none.
    `wyoming_addresses`: the Home Assistant hosts the Wyoming port admits, when there is one (else None)."""
    problems: list[str] = []
    user = probe.get("user") or "the connecting user"
    wanted = _ports(ports)

    if not probe.get("admin"):
        problems.append(
            f"{user} is not an elevated administrator here. The keep-alive task (run level highest), the firewall"
            " rules and the portproxy need one: connect as a member of Administrators. Over OpenSSH an"
            " administrator's session is elevated and its public key goes in"
            " %ProgramData%\\ssh\\administrators_authorized_keys (readable by Administrators and SYSTEM only),"
            " not in the user's own authorized_keys. become_method runas works only over WinRM."
        )

    if not probe.get("wsl"):
        problems.append(
            f"WSL is not installed (no wsl.exe in C:\\Program Files\\WSL or System32). As {user}: wsl --install"
            f" --no-distribution, reboot, then wsl --install -d {distribution}."
        )
    elif distribution.lower() not in {name.lower() for name in probe.get("distributions") or []}:
        listed = ", ".join(probe.get("distributions") or []) or "none"
        said = f" (wsl --list said: {probe['list_error']})" if probe.get("list_error") else ""
        problems.append(
            f"{user} has no WSL distribution named {distribution}; wsl --list shows: {listed}{said}."
            f" Distributions belong to the user who installed them: install it as {user}"
            f" (wsl --install -d {distribution}) or set windows_wsl_distribution to one listed."
        )

    build = int(probe.get("build") or 0)
    if mode == "mirrored" and build < MIRRORED_MIN_BUILD:
        problems.append(
            f"Mirrored networking needs Windows 11 22H2 (build {MIRRORED_MIN_BUILD}) or later; this PC is build"
            f" {build}. Set windows_wsl_networking_mode: nat."
        )
    elif mode == "mirrored" and not probe.get("hyperv_firewall"):
        problems.append(
            f"This PC (build {build}) has no Hyper-V firewall cmdlets (New-NetFirewallHyperVRule), which mirrored"
            " mode needs to let the LAN in: install the pending Windows updates, or set windows_wsl_networking_mode:"
            " nat."
        )

    taken = sorted(set(wanted) & set(_ports(probe.get("sshd_ports") or [])))
    for port in taken:
        if mode == "mirrored":
            where = (
                f"in mirrored mode WSL shares the PC's address, so WSL's sshd or the server cannot listen on"
                f" port {port}"
            )
        else:
            where = f"a portproxy on the PC's port {port} cannot forward it to WSL"
        problems.append(
            f"Windows' own OpenSSH Server listens on port {port}, and {where}. Give WSL's sshd another port"
            f" (Port 2222 in WSL's /etc/ssh/sshd_config and ansible_port: 2222 on {host or 'the WSL host'}), or"
            " set windows_wsl_ports."
        )

    if boot_check and probe.get("sshd_start") and probe.get("sshd_start") != "Automatic":
        problems.append(
            f"windows_wsl_boot_check reboots the PC, but its OpenSSH Server starts {probe['sshd_start']}, so"
            " nothing could connect afterwards: Set-Service sshd -StartupType Automatic."
        )

    if mode == "nat" and not listen_address:
        problems.append(
            "The portproxy listens on the PC's LAN address only, and none was found: the WSL host's and the"
            " PC's ansible_host are not IPv4 addresses, and the PC did not say which address the connection came"
            " in on. Set windows_wsl_listen_address to the PC's LAN address (ipconfig lists it)."
        )
    elif mode == "nat" and probe.get("addresses") and listen_address not in probe["addresses"]:
        problems.append(
            f"The portproxy would listen on {listen_address}, but {listen_address} is not an address of this PC"
            f" (it has: {', '.join(probe['addresses'])}). Set windows_wsl_listen_address to its LAN address, or"
            " fix ansible_host; give the PC a fixed address (a DHCP reservation) so that it stays."
        )
    problems += _scope_problems(profiles, remote_addresses)
    if wyoming_addresses is not None:
        problems += _addresses_problems(wyoming_addresses, "windows_wsl_wyoming_remote_addresses", wyoming=True)
    return problems


def _scope_problems(profiles, remote_addresses) -> list[str]:
    """The firewall rules' scope as the user set it, refused here rather than by a cmdlet halfway through."""
    problems = []
    if profiles is not None:
        if not profiles:
            problems.append("windows_wsl_firewall_profiles is empty: give the profiles the LAN is on, e.g. [private].")
        for profile in profiles:
            if str(profile).strip().lower() not in (*PROFILES, "any"):
                problems.append(
                    f"windows_wsl_firewall_profiles: {profile!r} is not a firewall profile (domain, private, public)."
                )
    if remote_addresses is not None:
        problems += _addresses_problems(remote_addresses, "windows_wsl_allowed_remote_addresses")
    return problems


def _plain(token) -> bool:
    """An address or a subnet, as the server's own allowlist reads them (no keyword, no range)."""
    try:
        ipaddress.ip_network(str(token).strip(), strict=False)
        return True
    except ValueError:
        return False


def _addresses_problems(addresses, name: str, wyoming: bool = False) -> list[str]:
    problems = []
    if not addresses:
        if wyoming:
            problems.append(
                f"{name} is empty, and Wyoming has no key: give your Home Assistant host's address"
                " (whisperlab_home_assistant_addresses), e.g. [192.168.1.20]."
            )
        else:
            problems.append(
                f"{name} is empty: give the addresses that may connect, e.g. [LocalSubnet] or [192.168.1.0/24]."
            )
    for token in addresses:
        if wyoming and _address(token) is not None and not _plain(token):
            problems.append(
                f"{name}: {token!r} is wider than a host or a subnet; the Wyoming port has no key, so name the Home"
                " Assistant host's address (or its subnet) alone."
            )
        elif _address(token) is None:
            problems.append(
                f"{name}: {token!r} is not an address, a subnet (192.168.1.0/24), a range (192.168.1.10-192.168.1.20)"
                " or LocalSubnet."
            )
    return problems


def _recorded(lines) -> set[tuple[str, int]]:
    """The portproxy entries whisperlab last made, from its record: "<address> <port>" lines, or a bare port
    (what runs before issue 19 wrote, when the portproxy listened on 0.0.0.0)."""
    entries = set()
    for line in lines or []:
        parts = str(line).split()
        if len(parts) == 1 and parts[0].isdigit():
            entries.add((EVERY_ADDRESS, int(parts[0])))
        elif len(parts) == 2 and parts[1].isdigit():
            entries.add((parts[0], int(parts[1])))
    return entries


def cleanup(probe: dict, mode: str, ports, listen_address: str = "") -> dict[str, list]:
    """whisperlab's own rules and portproxy entries that the chosen mode, ports and address no longer want.

    Ours are the Hyper-V rules named whisperlab-wsl-<port>, the Defender rules named "whisperlab WSL port
    <port>", and the portproxy entries on a port whisperlab forwards now or recorded when it last forwarded
    (netsh entries carry no name), listening on the address it listens on now, on an address it recorded, or
    on 0.0.0.0 (where it listened before issue 19). Mirrored mode wants no Defender rule and no portproxy: a
    listener left on <address>:<port> would keep the server from binding that port. NAT mode wants no Hyper-V
    rule, and the portproxy on the LAN address only. Either mode drops what is left from ports it no longer
    opens.
    """
    wanted = set(_ports(ports))

    def stale(pattern: re.Pattern, name: str, keep: bool) -> bool:
        match = pattern.match(name)
        return not (keep and match and int(match.group(1)) in wanted)

    hyperv_names = [rule["name"] if isinstance(rule, dict) else str(rule) for rule in probe.get("hyperv_rules") or []]
    hyperv = [name for name in hyperv_names if stale(HYPERV_RULE, name, mode == "mirrored")]
    firewall = [name for name in probe.get("firewall_rules") or [] if stale(FIREWALL_RULE, name, mode == "nat")]
    recorded = _recorded(probe.get("portproxy_record"))
    ours = recorded | {(EVERY_ADDRESS, port) for port in wanted | {port for _, port in recorded}}
    if listen_address:
        ours |= {(listen_address, port) for port in wanted}
    keep = {(listen_address, port) for port in wanted} if mode == "nat" and listen_address else set()
    portproxy = {
        (str(entry["listen_address"]), int(entry["listen_port"])) for entry in probe.get("portproxy") or []
    } & (ours - keep)
    return {
        "hyperv_rules": sorted(hyperv),
        "firewall_rules": sorted(firewall),
        "portproxy": [
            {"address": address, "port": port} for address, port in sorted(portproxy, key=lambda e: (e[1], e[0]))
        ],
    }


def _creator(value) -> str:
    return str(value or "").strip().strip("{}").lower()


def _same_rule(rule: dict, port: int, profiles: frozenset, addresses: frozenset, creator: str) -> bool:
    return (
        str(rule.get("direction", "")).lower() == "inbound"
        and str(rule.get("action", "")).lower() == "allow"
        and str(rule.get("enabled", "")).lower() == "true"
        and str(rule.get("protocol", "")).lower() in ("tcp", "6")
        and [str(local).strip() for local in rule.get("local_ports") or []] == [str(port)]
        and _creator(rule.get("vm_creator_id")) == _creator(creator)
        and _profiles(rule.get("profiles", "")) == profiles
        and _addresses(rule.get("remote_addresses")) == addresses
    )


def hyperv_fix(probe: dict, ports, profiles, remote_addresses, creator: str) -> list[int]:
    """The ports whose Hyper-V rule (whisperlab-wsl-<port>) is missing, or differs from the one the role makes:
    inbound, allowed, enabled, TCP to that port alone, for WSL's VM creator id, on exactly those profiles and
    from exactly those remote addresses. A rule made before issue 19 (every profile, any address) differs."""
    rules = {rule.get("name"): rule for rule in probe.get("hyperv_rules") or [] if isinstance(rule, dict)}
    wanted_profiles = _profiles(list(profiles))
    wanted_addresses = _addresses(remote_addresses)
    return [
        port
        for port in _ports(ports)
        if not (
            (rule := rules.get(f"whisperlab-wsl-{port}"))
            and _same_rule(rule, port, wanted_profiles, wanted_addresses, creator)
        )
    ]


def windows_wsl_preflight(
    probe,
    mode,
    distribution,
    ports,
    host="",
    boot_check=False,
    listen_address="",
    profiles=None,
    remote_addresses=None,
    wyoming_port=0,
    wyoming_addresses=None,
):
    return preflight(
        probe or {},
        mode,
        distribution,
        ports,
        host,
        bool(boot_check),
        listen_address or "",
        profiles,
        remote_addresses,
        list(wyoming_addresses or []) if int(wyoming_port or 0) > 0 else None,
    )


def windows_wsl_cleanup(probe, mode, ports, listen_address=""):
    return cleanup(probe or {}, mode, ports, listen_address or "")


def windows_wsl_hyperv_fix(probe, ports, profiles, remote_addresses, creator):
    return hyperv_fix(probe or {}, ports, profiles, remote_addresses, creator)


def windows_wsl_scope_fix(scope, probe, profiles, creator):
    """One firewall scope ({ports, addresses}) with the ports whose Hyper-V rule needs making (fix)."""
    addresses = list(scope.get("addresses") or [])
    fix = hyperv_fix(probe or {}, scope.get("ports") or [], profiles, addresses, creator) if scope.get("ports") else []
    return {"ports": list(scope.get("ports") or []), "addresses": addresses, "fix": fix}


class FilterModule:
    def filters(self):
        return {
            "windows_wsl_preflight": windows_wsl_preflight,
            "windows_wsl_cleanup": windows_wsl_cleanup,
            "windows_wsl_hyperv_fix": windows_wsl_hyperv_fix,
            "windows_wsl_scope_fix": windows_wsl_scope_fix,
        }
