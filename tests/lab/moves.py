"""Lab-only: when the server's address changes, re-running hosts_alias rewrites its line in place."""

from __future__ import annotations

import subprocess

GROUP = "clients"


PLAY = "- name: Only the alias\n  hosts: clients\n  roles: [hosts_alias]\n"


def apply_alias(inventory: str, playbook, address: str | None) -> None:
    extra = ["-e", f"hosts_alias_address={address}"] if address else []
    subprocess.run(["ansible-playbook", "-i", inventory, str(playbook), *extra], check=True, timeout=120)


def alias_lines(host, alias: str) -> list[str]:
    return [line for line in host.file("/etc/hosts").content_string.splitlines() if alias in line.split()]


def test_new_address_replaces_the_line(host, request, tmp_path):
    inventory = request.config.option.ansible_inventory
    playbook = tmp_path / "alias.yml"
    playbook.write_text(PLAY)
    variables = host.ansible.get_variables()
    alias = variables.get("whisperlab_server_alias", "wsl.home")
    (original,) = alias_lines(host, alias)
    try:
        apply_alias(inventory, playbook, "10.77.0.99")
        assert alias_lines(host, alias) == [f"10.77.0.99 {alias} # managed by whisperlab"]
    finally:
        apply_alias(inventory, playbook, None)
    assert alias_lines(host, alias) == [original]
