"""Each server setting has one description, in the server's option table (options._OPTIONS). From it:
the flags table of server/README.md is written, and the whisper_server role must carry each option
through: a whisper_server_* default, an argument_specs entry, a row in the role's README and a line in
the env file the unit reads. The few the role sets itself are named here, with the reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from whisper_server.options import _OPTIONS

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "whisper_server"
ENV_TEMPLATE = ROLE / "templates" / "home" / ".config" / "whisper-server" / "whisper-server.env.j2"
OPTIONS = [name for name, *_ in _OPTIONS] + ["vad"]

# The role variable that sets an option, where it is not whisper_server_<option>.
ROLE_VARIABLE = {
    "model_alias": "whisper_server_model_aliases",
    "allowed_hosts": "whisper_server_allowed_hosts_extra",
}
# Options the role works out itself, with no variable of their own.
ROLE_OWNED = {
    "api_key_file": "the role writes the key to the service account's 0600 key file and names it",
    "download_root": "the role provisions the model; the server never downloads one (HF_HUB_OFFLINE=1)",
}
NOT_IN_ENV = {"download_root"}


def role_variable(option: str) -> str:
    return ROLE_VARIABLE.get(option, f"whisper_server_{option}")


@pytest.fixture(scope="module")
def defaults():
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


@pytest.fixture(scope="module")
def specs():
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def test_the_server_readme_flags_table_is_written_from_the_options():
    result = subprocess.run([sys.executable, str(REPO / "server" / "tools" / "flags_table.py"), "--check"])
    assert result.returncode == 0, "server/README.md's flags table is stale: run python server/tools/flags_table.py"


@pytest.mark.parametrize("option", [o for o in OPTIONS if o not in ROLE_OWNED])
def test_the_role_carries_the_option(option, defaults, specs):
    variable = role_variable(option)
    assert variable in defaults, f"{option}: no {variable} in the role's defaults"
    assert variable in specs, f"{option}: no {variable} in the role's argument_specs"
    assert f"| `{variable}` |" in (ROLE / "README.md").read_text(), (
        f"{option}: no row for {variable} in the role's README"
    )


@pytest.mark.parametrize("option", [o for o in OPTIONS if o not in NOT_IN_ENV])
def test_the_env_file_sets_the_option(option):
    assert re.search(rf"^WHISPER_{option.upper()}=", ENV_TEMPLATE.read_text(), re.M), (
        f"no WHISPER_{option.upper()}= line"
    )


def test_the_exceptions_are_real_options():
    assert set(ROLE_VARIABLE) | set(ROLE_OWNED) | NOT_IN_ENV <= set(OPTIONS)
