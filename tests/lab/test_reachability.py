"""Lab-only: the client play ends by reaching the server the way the assistant does, and says why not.

A firewall rule in the wsl host's own network namespace drops the server's port, as a Windows
firewall would: the client play must stop with the "timed out" diagnosis, then pass once it is
lifted. A wrong key and an unknown name get their own diagnoses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

GROUP = "clients"


def drop(port: int, action: str) -> None:
    """Insert (-I) or delete (-D) a DROP of the port on the wsl host's namespace (lab.sh names it wl-wsl)."""
    subprocess.run(
        ["ip", "netns", "exec", "wl-wsl", "iptables", action, "INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"],
        check=True,
    )


def test_a_dropped_port_fails_the_client_play_as_timed_out_then_it_passes(host, run_role):
    # lan_check is the client play's last role, and the one that stops it: it runs alone here, so the
    # check does not wait for the rest of the play twice.
    port = int(host.ansible.get_variables().get("whisperlab_server_port", 8000))
    drop(port, "-I")
    try:
        failed = run_role("clients", "lan_check", expect_failure=True, lan_check_timeout=5)
    finally:
        drop(port, "-D")
    assert "Timed out after 5 s connecting to" in failed
    assert "firewall" in failed
    passed = run_role("clients", "lan_check")
    assert "Ask each healthy server for the model list with the client's key" in passed


def test_a_wrong_key_and_an_unknown_name_get_their_diagnoses(host, run_role, tmp_path):
    wrong = tmp_path / "wrong_key"
    wrong.write_text("sk-whisperlab-not-the-servers-key\n")
    out = run_role("clients", "lan_check", expect_failure=True, lan_check_api_key_file=str(wrong))
    assert "401 from" in out and "refuses this client" in out
    assert "not-the-servers-key" not in out  # the key itself is never printed
    nowhere = [{"alias": "nowhere.invalid", "port": 8000}]
    out = run_role("clients", "lan_check", expect_failure=True, lan_check_servers=nowhere)
    assert "does not resolve on this client" in out


STANDIN = Path(__file__).parent / "standin.py"


def test_a_server_that_answers_without_a_key_fails_the_check(run_role, tmp_path):
    """Auth off on the LAN is a failure, not a pass: lan_check also asks without the key and wants 401."""
    port, body = 18777, json.dumps({"status": "ready", "object": "list", "data": []})
    server = subprocess.Popen(
        ["ip", "netns", "exec", "wl-wsl", "python3", str(STANDIN), str(port), "200", str(tmp_path / "log"), body]
    )
    try:
        open_one = [{"alias": "wsl.home", "port": port}]
        out = run_role("clients", "lan_check", expect_failure=True, lan_check_servers=open_one)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert "answers without a key" in out and "authentication off" in out
