"""windows_wsl_preflight and windows_wsl_cleanup: what the role decides from its look at the PC.

The role's first task reads the PC without changing it (administrator or not, the Windows build, wsl.exe,
the user's distributions, Windows' own sshd, and the firewall rules and portproxy entries whisperlab made
before). The decisions are made here, on the controller, so that they are plain Python and are tested on
Linux (tests/roles/test_windows_preflight.py and test_windows_wsl_render.py); the PowerShell that follows
only carries them out.
"""

from __future__ import annotations

import re

# Windows 11 22H2, the first build with mirrored networking and the Hyper-V firewall (Microsoft's WSL docs).
MIRRORED_MIN_BUILD = 22621
HYPERV_RULE = re.compile(r"^whisperlab-wsl-(\d+)$")
FIREWALL_RULE = re.compile(r"^whisperlab WSL port (\d+)$")


def _ports(ports) -> list[int]:
    return [int(port) for port in ports]


def preflight(
    probe: dict,
    mode: str,
    distribution: str,
    ports,
    host: str = "",
    boot_check: bool = False,
) -> list[str]:
    """Every reason this PC cannot run what the role sets up, each with its fix; [] when there is none."""
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
            where = f"a portproxy on 0.0.0.0:{port} cannot forward it to WSL"
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
    return problems


def cleanup(probe: dict, mode: str, ports) -> dict[str, list]:
    """whisperlab's own rules and portproxy entries that the chosen mode and ports no longer want.

    Ours are the Hyper-V rules named whisperlab-wsl-<port>, the Defender rules named "whisperlab WSL port
    <port>", and the portproxy entries listening on 0.0.0.0 on a port whisperlab forwards now or recorded
    when it last forwarded (netsh entries carry no name). Mirrored mode wants no Defender rule and no
    portproxy: a listener left on 0.0.0.0:<port> would keep the server from binding that port. NAT mode
    wants no Hyper-V rule. Either mode drops what is left from ports it no longer opens.
    """
    wanted = set(_ports(ports))

    def stale(pattern: re.Pattern, name: str, keep: bool) -> bool:
        match = pattern.match(name)
        return not (keep and match and int(match.group(1)) in wanted)

    hyperv = [name for name in probe.get("hyperv_rules") or [] if stale(HYPERV_RULE, name, mode == "mirrored")]
    firewall = [name for name in probe.get("firewall_rules") or [] if stale(FIREWALL_RULE, name, mode == "nat")]
    ours = wanted | set(_ports(probe.get("portproxy_record") or []))
    portproxy = sorted(
        {
            int(entry["listen_port"])
            for entry in probe.get("portproxy") or []
            if entry.get("listen_address") == "0.0.0.0"
            and int(entry["listen_port"]) in ours
            and (mode == "mirrored" or int(entry["listen_port"]) not in wanted)
        }
    )
    return {"hyperv_rules": sorted(hyperv), "firewall_rules": sorted(firewall), "portproxy_ports": portproxy}


def windows_wsl_preflight(probe, mode, distribution, ports, host="", boot_check=False):
    return preflight(probe or {}, mode, distribution, ports, host, bool(boot_check))


def windows_wsl_cleanup(probe, mode, ports):
    return cleanup(probe or {}, mode, ports)


class FilterModule:
    def filters(self):
        return {"windows_wsl_preflight": windows_wsl_preflight, "windows_wsl_cleanup": windows_wsl_cleanup}
