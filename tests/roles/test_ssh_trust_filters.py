"""ssh_trust's controller-side filters: where its ~/.ssh/config block goes (before any Host, Match or
Include, since ssh keeps the first value it finds), and SSH host key fingerprints (checked against the
real ssh-keygen)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "roles" / "ssh_trust" / "filter_plugins" / "ssh_trust.py"
spec = importlib.util.spec_from_file_location("ssh_trust_filters", PLUGIN)
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)

BEGIN, END = "# BEGIN whisperlab ssh_trust", "# END whisperlab ssh_trust"
BLOCK = "Host wsl\n  HostName wsl.home\n  User lab\n"


def place(text: str, block: str = BLOCK) -> str:
    return plugin.config_block(text, block, BEGIN, END)


def test_the_block_goes_before_a_host_star_and_after_global_options():
    users = "AddKeysToAgent yes\nHost *\n  User nobody\n  IdentityFile ~/.ssh/id_work\n"
    out = place(users).splitlines()
    assert out[0] == "AddKeysToAgent yes"
    assert out[1] == BEGIN and out.index(END) < out.index("Host *")
    assert out[-3:] == ["Host *", "  User nobody", "  IdentityFile ~/.ssh/id_work"]


def test_match_and_include_count_as_the_first_scope_too():
    for first in ("Match host *", "Include ~/.ssh/config.d/*", "host=*", "  HOST other"):
        out = place(f"{first}\n  User nobody\n").splitlines()
        assert out[0] == BEGIN and out[-2] == first, first


def test_a_block_an_older_run_appended_is_moved_up_and_nothing_else_changes():
    old = f"Host *\n  User nobody\n\nHost work\n  HostName work.example\n{BEGIN}\nHost wsl\n  User old\n{END}\n"
    out = place(old)
    assert out == f"{BEGIN}\n{BLOCK}{END}\nHost *\n  User nobody\n\nHost work\n  HostName work.example\n"


def test_a_second_run_changes_nothing():
    for users in ("", "Host *\n  User nobody\n", "Compression yes\n\nHost a\n  Port 2\n", "no newline at end"):
        once = place(users)
        assert place(once) == once, users
    assert place("") == f"{BEGIN}\n{BLOCK}{END}\n"


def test_a_changed_block_replaces_the_old_one_in_place():
    once = place("Host *\n  User nobody\n")
    changed = place(once, "Host wsl\n  HostName wsl.home\n  User lab\nHost wsl2\n  HostName wsl2.home\n")
    assert changed.count(BEGIN) == 1 and "wsl2.home" in changed and changed.index(END) < changed.index("Host *")


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_fingerprints_match_ssh_keygen(tmp_path, kind):
    key = tmp_path / f"id_{kind}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True)
    line = (tmp_path / f"id_{kind}.pub").read_text()
    printed = subprocess.run(["ssh-keygen", "-lf", str(key) + ".pub"], capture_output=True, text=True, check=True)
    assert plugin.fingerprint(line) == printed.stdout.split()[1]
    with pytest.raises(ValueError):
        plugin.fingerprint("not-a-key")


def test_no_servers_leaves_just_the_markers():
    # Ansible renders the block's template to None when there is no server to list.
    assert place("Host *\n", None) == f"{BEGIN}\n{END}\nHost *\n"
