"""The status role asks each server as the user ssh_trust set the key up for: ssh_trust_user where the
inventory sets it, else the client user (the real ansible-playbook against this machine, no servers)."""

from __future__ import annotations

import os
import pwd

import pytest
from ansible_run import value_after_role

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.mark.parametrize(("host_vars", "expected"), [({}, ME), ({"ssh_trust_user": "nobody"}, "nobody")])
def test_status_asks_as_the_user_ssh_trust_set_up(tmp_path, host_vars, expected):
    host_vars = {"ansible_user": ME, **host_vars}
    assert value_after_role(tmp_path, "status", "status_user", "clients", host_vars, {"status_servers": []}) == expected
