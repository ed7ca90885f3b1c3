"""Lab-only: when the server's address changes, re-running hosts_alias rewrites its line in place."""

from __future__ import annotations

GROUP = "clients"


def alias_lines(host, alias: str) -> list[str]:
    return [line for line in host.file("/etc/hosts").content_string.splitlines() if alias in line.split()]


def test_new_address_replaces_the_line(host, run_role):
    alias = host.ansible.get_variables().get("whisperlab_server_alias", "wsl.home")
    (original,) = alias_lines(host, alias)
    try:
        run_role("clients", "hosts_alias", hosts_alias_address="10.77.0.99")
        assert alias_lines(host, alias) == [f"10.77.0.99 {alias} # managed by whisperlab"]
    finally:
        run_role("clients", "hosts_alias")
    assert alias_lines(host, alias) == [original]
