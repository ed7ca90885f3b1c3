"""Checks that need no role: every host is reachable, runs sshd, and has the Python Ansible needs."""

from whisperlab_testkit.inventory_facts import is_darwin, listening_on


def test_reachable(host):
    assert host.run("true").rc == 0


def test_sshd_running(host):
    if not is_darwin(host):  # macOS's Remote Login is launchd's, not a service testinfra can ask
        assert host.service("ssh").is_running
    assert listening_on(host, 22)


def test_python_present(host):
    assert host.run("python3 --version").rc == 0
