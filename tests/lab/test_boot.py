"""The lab's own boot, checked on the running lab (tests/lab/sequence.sh runs this file by path).

Each host must boot in a cgroup of its own: hosts that shared one failed units with 219/CGROUP, one
boot in two to five, and a host whose systemd-user-sessions failed refused every login. And a host
that is up but refuses logins must be named, with the reason, instead of a bare "no SSH" after 180 s.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

# Run by the lab sequence before the first converge (pytest tests/lab -m before_converge).
pytestmark = pytest.mark.before_converge

LAB = Path(__file__).with_name("lab.sh")
STATE = Path(os.environ.get("WHISPERLAB_STATE", "/var/lib/whisperlab"))
HOSTS = ("wsl", "wsl2", "mac")


def guest_init(name: str) -> int:
    nspawn = (STATE / f"{name}.nspawn.pid").read_text().strip()
    children = subprocess.run(["pgrep", "-P", nspawn], capture_output=True, text=True, check=True).stdout.split()
    assert children, f"{name}: nspawn {nspawn} has no init"
    return int(children[0])


def cgroups(pid: int) -> dict[str, str]:
    """The hierarchies a guest's systemd manages, each with the process's path in it."""
    paths = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, hierarchy, path = line.split(":", 2)
        if hierarchy in ("name=systemd", ""):
            paths[hierarchy or "unified"] = path
    return paths


def test_each_host_boots_in_a_cgroup_of_its_own():
    seen = {name: cgroups(guest_init(name)) for name in HOSTS}
    for name, paths in seen.items():
        assert paths, f"{name}: its init is in no systemd-managed cgroup hierarchy"
        for hierarchy, path in paths.items():
            assert path.startswith(f"/whisperlab-{name}/"), f"{name}: init is in {path} ({hierarchy})"
    for hierarchy in ("name=systemd", "unified"):
        inits = [paths[hierarchy] for paths in seen.values() if hierarchy in paths]
        assert len(set(inits)) == len(inits), f"hosts share a cgroup in {hierarchy}: {inits}"


@pytest.fixture
def nologin():
    """/run/nologin on the mac host, as a failed systemd-user-sessions leaves it; removed afterwards."""
    init = guest_init("mac")
    enter = ["nsenter", "-t", str(init), "-m", "-u", "-i", "-n", "-p", "--"]
    subprocess.run([*enter, "touch", "/run/nologin"], check=True)
    yield
    subprocess.run([*enter, "rm", "-f", "/run/nologin"], check=True)
    subprocess.run([str(LAB), "wait", "mac"], check=True, timeout=200)


def test_a_host_that_refuses_logins_is_named_at_once(nologin):
    started = time.monotonic()
    result = subprocess.run([str(LAB), "wait", "mac"], capture_output=True, text=True, timeout=200)
    elapsed = time.monotonic() - started
    print(result.stderr)
    assert result.returncode == 1
    assert "mac is up but refuses logins: /run/nologin is still there" in result.stderr
    assert "systemd-user-sessions:" in result.stderr
    # Not the 180 s SSH deadline: the refusal is seen on the first failed login.
    assert elapsed < 60, f"took {elapsed:.0f} s"
