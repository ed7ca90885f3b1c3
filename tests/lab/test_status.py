"""Lab-only: `make status` (playbooks/status.yml) from the client, over its restricted, pinned SSH key:
each server's /health, unit, GPU and last requests; a stopped server is reported, not fatal. The second
server's GPU line comes from the lab's STAND-IN nvidia-smi (no GPU is there)."""

from __future__ import annotations

import testinfra

from whisperlab_testkit.inventory_facts import server_user
from whisperlab_testkit.lab import ansible_playbook
from whisperlab_testkit.support import REPO

GROUP = "clients"
STANDIN = "/etc/whisperlab-standin-gpu"


def status(inventory: str) -> str:
    result = ansible_playbook(REPO / "playbooks" / "status.yml", inventory=inventory, timeout=300)
    assert result.returncode == 0
    assert "changed=0" in result.stdout and "failed=0" in result.stdout
    return result.stdout


def section(out: str, name: str) -> str:
    """The debug message for one server, its lines joined (Ansible's output wraps long ones)."""
    start = out.index(f"- {name} (")
    end = out.find("ok: [", start)
    return " ".join(out[start : end if end >= 0 else len(out)].split())


def test_status_of_each_server_and_of_a_stopped_one(host, request):
    inventory = request.config.option.ansible_inventory
    names = host.ansible.get_variables()["groups"]["whisper_servers"]
    servers = [testinfra.get_host(f"ansible://{n}", ansible_inventory=inventory) for n in names]
    first, last = servers[0], servers[-1]
    assert last.run(f"echo 'NVIDIA GeForce RTX 4070 (whisperlab stand-in)' | sudo tee {STANDIN} >/dev/null").rc == 0
    try:
        out = status(inventory)
        for name, server in zip(names, servers):
            part = section(out, name)
            assert f"host: {server.check_output('hostname')}" in part
            assert "health: {" in part
            assert '"status":"ready"' in part.replace(" ", "") or '"status":"unloaded"' in part.replace(" ", "")
            assert "unit: whisper.service active (running) since" in part and ", restarts " in part
            assert "unit: whisper-tls.service active (running) since" in part
            assert "log (last 5 lines):" in part
        assert "gpu: none" in section(out, names[0])
        assert "gpu: NVIDIA GeForce RTX 4070 (whisperlab stand-in), memory 1234 / 24564 MiB" in section(out, names[-1])

        user = server_user(first.ansible.get_variables())
        systemctl = f"sudo -u {user} XDG_RUNTIME_DIR=/run/user/{first.user(user).uid} systemctl --user"
        assert first.run(f"{systemctl} stop whisper.service").rc == 0
        try:
            part = section(status(inventory), names[0])
            assert "health: unreachable" in part
            assert "unit: whisper.service inactive (dead)" in part
            # The TLS front stops with the server: a stopped server is a refused connection.
            assert "unit: whisper-tls.service inactive (dead)" in part
        finally:
            assert first.run(f"{systemctl} start whisper.service").rc == 0
            ca = f"{first.user(user).home}/.config/whisper-server/tls/ca.crt"
            ready = f"sudo curl -sf --cacert {ca} https://localhost:8000/health | grep -q ready"
            wait = f"for i in $(seq 120); do {ready} && exit 0; sleep 1; done; exit 1"
            assert first.run(wait).rc == 0
    finally:
        last.run(f"sudo rm -f {STANDIN}")
