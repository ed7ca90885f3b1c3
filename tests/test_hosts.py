"""Checks that need no role: every host is reachable, runs sshd, and has the Python Ansible needs."""


def test_reachable(host):
    assert host.run("true").rc == 0


def test_sshd_running(host):
    sshd = host.service("ssh") if host.system_info.distribution != "darwin" else None
    if sshd is not None:
        assert sshd.is_running
    assert host.socket("tcp://0.0.0.0:22").is_listening or host.socket("tcp://:::22").is_listening


def test_python_present(host):
    assert host.run("python3 --version").rc == 0
