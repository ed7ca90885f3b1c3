"""Lab-only: the client's SSH trust against what a real Mac may already have, and against a server
that is not the one the inventory means.

- a `Host *` in the user's ~/.ssh/config, above an older run's block, does not win: the block moves
  above it and `ssh wsl` still works
- host key fingerprints pinned in the inventory (read on the box's console) pass when they match, and
  stop the play when they do not
"""

from __future__ import annotations

import testinfra

from whisperlab_testkit.inventory_facts import home_of

GROUP = "clients"
FOREIGN = "Host *\n  User nobody\n  IdentityFile ~/.ssh/id_nobody\n  IdentitiesOnly yes\n"


def ssh_wsl_works(host) -> bool:
    # testinfra's SSH backend takes exit status 255 for its own failure; ssh's own 255 is read here.
    return host.check_output("ssh -o BatchMode=yes -o ConnectTimeout=10 wsl true 2>/dev/null; echo rc=$?") == "rc=0"


def config_of(host) -> tuple[str, str]:
    user = host.ansible.get_variables()["ansible_user"]
    path = f"{home_of(host, user)}/.ssh/config"
    return path, host.file(path).content_string


def test_a_host_star_above_the_block_does_not_win(host, run_role):
    path, original = config_of(host)
    assert "# BEGIN whisperlab ssh_trust" in original
    try:
        # What an older run left on a Mac whose user keeps a `Host *`: our block after it.
        host.run(f"printf '%s' '{FOREIGN}' > {path}.new && cat {path} >> {path}.new && mv {path}.new {path}")
        assert not ssh_wsl_works(host), "the Host * above the block wins"
        run_role("clients", "ssh_trust")
        now = host.file(path).content_string
        assert now.index("# END whisperlab ssh_trust") < now.index("Host *")
        assert FOREIGN in now and now.count("# BEGIN whisperlab ssh_trust") == 1
        assert ssh_wsl_works(host)
        # A second run leaves the file as it is.
        assert "changed=0" in run_role("clients", "ssh_trust")
    finally:
        host.run(f"printf '%s' '{original}' > {path}")


def fingerprints(host, request) -> list[str]:
    inventory = request.config.option.ansible_inventory
    found = []
    for name in host.ansible.get_variables()["groups"]["whisper_servers"]:
        server = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
        found.append(server.check_output("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").split()[1])
    return found


def test_pinned_fingerprints_pass_when_they_match_and_stop_the_play_when_not(host, run_role, request):
    real = fingerprints(host, request)
    assert all(f.startswith("SHA256:") for f in real)
    run_role("clients", "ssh_trust", whisperlab_host_key_fingerprint=real)
    wrong = "SHA256:" + "A" * 43
    out = run_role("clients", "ssh_trust", expect_failure=True, whisperlab_host_key_fingerprint=wrong)
    assert "HOST KEY MISMATCH" in out and wrong in out and real[0] in out
