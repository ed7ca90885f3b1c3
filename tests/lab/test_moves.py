"""Lab-only: when a server's address changes, re-running hosts_alias rewrites its line in place; a server
gone from the inventory loses its line."""

from __future__ import annotations

GROUP = "clients"


def alias_lines(host, alias: str) -> list[str]:
    return [line for line in host.file("/etc/hosts").content_string.splitlines() if alias in line.split()]


def test_new_address_replaces_the_line(host, run_role):
    alias = host.ansible.get_variables().get("whisperlab_server_alias", "wsl.home")
    (original,) = alias_lines(host, alias)
    (second,) = alias_lines(host, "wsl2.home")
    try:
        run_role("clients", "hosts_alias", hosts_alias_entries=[{"alias": alias, "address": "10.77.0.99"}])
        assert alias_lines(host, alias) == [f"10.77.0.99 {alias} # managed by whisperlab"]
        # A server gone from the inventory loses its entry; the user's own lines stay.
        assert alias_lines(host, "wsl2.home") == []
        assert alias_lines(host, "localhost")
    finally:
        run_role("clients", "hosts_alias")
    assert alias_lines(host, alias) == [original]
    assert alias_lines(host, "wsl2.home") == [second]
