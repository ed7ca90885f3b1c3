"""What the windows_wsl role's controller-side tests share: the PC as the role's first task sees it."""

# What the role's first task reports on a ready Windows 11 PC with the Store WSL: Windows' own sshd on 22,
# WSL's on 2222 (the inventory's ansible_port), nothing of whisperlab's there yet.
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
}
