"""ssh_trust's ~/.ssh/config edit, run by the real ansible-playbook against this machine (connection
local, a temporary home, no servers): the file is read and written as the client user, never as root,
and a link in its place is refused with nothing changed, since following it would copy whatever it
points at (a root-only file) into the user's own config."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ansible_run import NO_SERVER, ansible_playbook

REPO = Path(__file__).resolve().parents[2]
ROOT_ONLY = "root only: do not copy\n"
USERS = "Host *\n  User someone\n"
BEGIN, END = "# BEGIN whisperlab ssh_trust", "# END whisperlab ssh_trust"  # the block itself is empty: no servers
# whisperlab gets one server for its own checks (NO_SERVER); ssh_trust is given none, so nothing is
# done to any server and no ssh is run: what is left is the client's key and its ~/.ssh/config.


def play(tmp: Path, home: Path, user: str, host_vars: dict) -> subprocess.CompletedProcess:
    """ssh_trust, whole, on this machine for `user` with `home`; returns the finished run."""
    inventory = {"all": {"hosts": {"box": {"ansible_connection": "local", **host_vars}}}}
    (tmp / "hosts.yml").write_text(json.dumps(inventory))
    (tmp / "play.yml").write_text("- name: Only ssh_trust\n  hosts: box\n  gather_facts: false\n  roles: [ssh_trust]\n")
    extra = {
        "ssh_trust_user": user,
        "ssh_trust_home": str(home),
        "ssh_trust_servers": [],
        "whisperlab_servers": [NO_SERVER],
    }
    return ansible_playbook(
        tmp / "hosts.yml", tmp / "play.yml", extra, env={"ANSIBLE_LOCAL_TEMP": str(tmp / "ansible")}
    )


def files_under(folder: Path) -> dict[str, tuple[int, str]]:
    """Every regular file's owner and text, links not followed."""
    return {
        str(p.relative_to(folder)): (p.lstat().st_uid, p.read_text(errors="replace"))
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


# --- as whoever runs the tests, with become switched off ----------------------------------------
# The connection variable ansible_become overrides the tasks' `become: true`: the role runs as this
# user, which needs no sudo, and shows what the role does with the file.


def as_me(tmp_path: Path) -> tuple[Path, dict]:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    host_vars = {"ansible_become": False, "ansible_python_interpreter": sys.executable}
    return home, host_vars


@pytest.mark.parametrize("users", [USERS, None])
def test_the_block_is_added_and_the_users_lines_kept(tmp_path, users):
    home, host_vars = as_me(tmp_path)
    config = home / ".ssh" / "config"
    if users is not None:
        config.write_text(users)
    result = play(tmp_path, home, pwd.getpwuid(os.getuid()).pw_name, host_vars)
    assert result.returncode == 0, result.stdout + result.stderr
    assert config.read_text() == f"{BEGIN}\n{END}\n{users or ''}"
    assert not config.is_symlink() and config.stat().st_mode & 0o777 == 0o600


def test_a_linked_ssh_config_is_refused_and_nothing_changes(tmp_path):
    home, host_vars = as_me(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "secret"
    target.write_text(ROOT_ONLY)
    config = home / ".ssh" / "config"
    config.symlink_to(target)
    result = play(tmp_path, home, pwd.getpwuid(os.getuid()).pw_name, host_vars)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert f"{config} is a symbolic link" in out and "Nothing was changed" in out
    assert config.is_symlink() and os.readlink(config) == str(target)
    assert target.read_text() == ROOT_ONLY
    assert list((home / ".ssh").iterdir()) == [config], "the role went on after refusing"


# --- as root, for an unprivileged user, the way the role runs on a client ------------------------
# `su -s /bin/sh nobody` stands in for sudo: root needs no password for it, and nobody's own shell is
# nologin. The home lives in a folder nobody can reach (pytest's own is root's, mode 0700).

AS_NOBODY = {
    "ansible_python_interpreter": "/usr/bin/python3",
    "ansible_become_method": "su",
    "ansible_become_flags": "-s /bin/sh",
}
as_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("su") or not Path("/usr/bin/python3").exists(),
    reason="needs root, su and /usr/bin/python3 to run the role for another user",
)


@pytest.fixture
def nobody_home():
    user = pwd.getpwnam("nobody")
    top = Path(tempfile.mkdtemp(prefix="ssh-trust-", dir="/tmp"))
    try:
        top.chmod(0o711)
        home = top / "home"
        (home / ".ssh").mkdir(parents=True, mode=0o700)
        for path in (home, home / ".ssh"):
            os.chown(path, user.pw_uid, user.pw_gid)
        yield top, home
    finally:
        shutil.rmtree(top)


@as_root
@pytest.mark.parametrize("how", ["symbolic link", "hard link"])
def test_a_root_only_file_in_place_of_the_users_config_is_never_copied_into_it(tmp_path, nobody_home, how):
    """A symbolic link is refused outright. A hard link (made here by root; the user could not link a
    file they cannot read) is a regular file, and only reading it as the user keeps its text out: as
    root the role would read it and write it back, with the block, as the user's own file."""
    top, home = nobody_home
    secret = top / "secret"
    secret.write_text(ROOT_ONLY)
    secret.chmod(0o600)
    config = home / ".ssh" / "config"
    if how == "symbolic link":
        config.symlink_to(secret)
    else:
        os.link(secret, config)
    result = play(tmp_path, home, "nobody", AS_NOBODY)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert ROOT_ONLY.strip() not in out, "the root-only text was read"
    assert "Nothing was changed" in out
    assert (
        f"{config} is a symbolic link" in out
        if how == "symbolic link"
        else f"{config} exists, but nobody cannot read it" in out
    )
    leaked = [name for name, (owner, text) in files_under(home).items() if ROOT_ONLY.strip() in text and owner != 0]
    assert leaked == [], "the root-only text was copied into the user's files"
    assert secret.read_text() == ROOT_ONLY and secret.stat().st_uid == 0 and secret.stat().st_mode & 0o777 == 0o600
    assert config.is_symlink() if how == "symbolic link" else config.stat().st_ino == secret.stat().st_ino
    assert list((home / ".ssh").iterdir()) == [config], "the role went on after refusing"


@as_root
def test_as_the_user_the_block_is_written_and_the_file_stays_theirs(tmp_path, nobody_home):
    _, home = nobody_home
    user = pwd.getpwnam("nobody")
    config = home / ".ssh" / "config"
    config.write_text(USERS)
    os.chown(config, user.pw_uid, user.pw_gid)
    config.chmod(0o600)
    result = play(tmp_path, home, "nobody", AS_NOBODY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert config.read_text() == f"{BEGIN}\n{END}\n{USERS}"
    assert config.stat().st_uid == user.pw_uid
    assert (home / ".ssh" / "id_ed25519_whisperlab").stat().st_uid == user.pw_uid
