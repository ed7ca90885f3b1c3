"""What the windows_wsl role's controller-side tests share: the PC as the role's first task sees it."""

# What the role's first task reports on a ready Windows 11 PC with the Store WSL: Windows' own sshd on 22,
# WSL's on 2222 (the inventory's ansible_port), nothing of whisperlab's there yet. Its LAN address is
# 192.168.1.50 (the one the SSH session came in on); 172.28.0.1 is WSL's own switch.
READY_PC = {
    "user": "PC\\me",
    "admin": True,
    "build": 22631,
    "wsl": "C:\\Program Files\\WSL\\wsl.exe",
    "distributions": ["Ubuntu-24.04"],
    "list_error": "",
    "sshd_start": "Automatic",
    "sshd_ports": [22],
    "hyperv_firewall": True,
    "hyperv_rules": [],
    "firewall_rules": [],
    "portproxy": [],
    "portproxy_record": [],
    "addresses": ["127.0.0.1", "192.168.1.50", "172.28.0.1"],
    "connected_address": "192.168.1.50",
}

WSL_CREATOR = "{40E0AC32-46A5-438A-A0B2-2B479E8F2E90}"


def hyperv_rule(port: int, **changes) -> dict:
    """A whisperlab Hyper-V rule as the probe reports it (Get-NetFirewallHyperVRule's properties, as text),
    the way the role makes it with its defaults; `changes` replace properties."""
    return {
        "name": f"whisperlab-wsl-{port}",
        "direction": "Inbound",
        "action": "Allow",
        "enabled": "True",
        "protocol": "TCP",
        "vm_creator_id": WSL_CREATOR,
        "local_ports": [str(port)],
        "remote_addresses": ["LocalSubnet"],
        "profiles": "Domain, Private",
        **changes,
    }
