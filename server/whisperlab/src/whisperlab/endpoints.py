"""Where a request goes, and with which key: an endpoint named on the command line.

An endpoint is one of:
  openai             OpenAI's API (OPENAI_BASE_URL moves it, as in the SDK); its key: OPENAI_API_KEY
  a server's name    from the inventory (--inventory): its alias (wsl.home), short name (wsl) or host
                     name; reached at its address, with the inventory's key file and CA
  a URL              http(s)://host:port/v1; its key: WHISPERLAB_API_KEY, or none

A key never comes from the command line (it would sit in the shell's history and in `ps`): only from a
file or an environment variable, and --key-file/--key-env name those, never the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Optional

OPENAI_URL = "https://api.openai.com/v1"


class EndpointError(Exception):
    """An endpoint that cannot be used as named; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    label: str  # as named on the command line
    base_url: str  # ends in /v1
    key: Optional[str] = dataclasses.field(default=None, repr=False)
    ca_file: Optional[str] = None  # trusted besides the system's store
    model: str = "whisper-1"
    is_openai: bool = False

    @property
    def name(self) -> str:
        """Short, for tables: a URL's host:port, else the label."""
        if "://" in self.label:
            return self.label.split("://", 1)[1].split("/", 1)[0]
        return self.label

    def client(self, *, timeout: float, max_retries: int):
        """An official OpenAI client for this endpoint. Its retries honour Retry-After."""
        import openai

        context = ssl.create_default_context()
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self.key or "none",  # a server without a key ignores it; the SDK insists on one
            timeout=timeout,
            max_retries=max_retries,
            http_client=openai.DefaultHttpxClient(verify=context),
        )


@dataclasses.dataclass
class Options:
    """How endpoints are resolved: the inventory, and per-endpoint keys, CAs and models, each given
    as LABEL=VALUE (or VALUE alone for every endpoint)."""

    inventory: Optional[str] = None
    key_files: dict = dataclasses.field(default_factory=dict)
    key_envs: dict = dataclasses.field(default_factory=dict)
    ca_files: dict = dataclasses.field(default_factory=dict)
    models: dict = dataclasses.field(default_factory=dict)

    def for_label(self, table: dict, label: str) -> Optional[str]:
        return table.get(label, table.get("*"))


def per_label(values: list, what: str) -> dict:
    """['wsl.home=/path', '/other'] -> {'wsl.home': '/path', '*': '/other'} (the last '=' splits)."""
    table: dict = {}
    for value in values or []:
        label, sep, rest = value.rpartition("=")
        if not sep:
            label, rest = "*", value
        if not label or not rest:
            raise EndpointError(f"{what} {value!r}: give LABEL=VALUE, or VALUE for every endpoint")
        table[label] = rest
    return table


def read_key_file(path: str) -> str:
    file = Path(path).expanduser()
    try:
        key = file.read_text().strip()
    except OSError as error:
        raise EndpointError(f"cannot read the key file {file}: {error.strerror}") from None
    if not key:
        raise EndpointError(f"the key file {file} is empty")
    return key


def read_key_env(name: str) -> str:
    key = os.environ.get(name, "").strip()
    if not key:
        raise EndpointError(f"the environment variable {name} is not set (or empty)")
    return key


def ansible(inventory: str) -> tuple:
    """(inventory path, the checkout it belongs to, ansible-playbook, its environment) for running one of
    the checkout's playbooks on that inventory."""
    path = Path(inventory).expanduser().resolve()
    if not path.exists():
        raise EndpointError(f"no inventory at {path}")
    # The checkout the inventory lives in, else the one this package was installed from (make setup).
    candidates = [*path.parents, *Path(__file__).resolve().parents]
    repo = next((p for p in candidates if (p / "playbooks" / "endpoints.yml").is_file()), None)
    if repo is None:
        raise EndpointError(f"no whisperlab checkout (playbooks/endpoints.yml) above {path} or this command")
    search = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    playbook_cmd = shutil.which("ansible-playbook", path=search)
    if not playbook_cmd:
        raise EndpointError("ansible-playbook is not installed here (make setup installs it into .venv)")
    return path, repo, playbook_cmd, {**os.environ, "ANSIBLE_CONFIG": str(repo / "ansible.cfg")}


def inventory_servers(inventory: str) -> dict:
    """The whisperlab role's own view of an inventory: {servers, api_key_file, tls, ca_cert}, read
    through playbooks/endpoints.yml (so an alias here is the alias the clients use)."""
    path, repo, playbook_cmd, env = ansible(inventory)
    env = {**env, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    done = subprocess.run(
        [playbook_cmd, "-i", str(path), "playbooks/endpoints.yml"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        report = json.loads(done.stdout)
        results = report["plays"][0]["tasks"][0]["hosts"]
        return next(iter(results.values()))["msg"]
    except (ValueError, KeyError, IndexError, StopIteration):
        raise EndpointError(
            f"could not read the servers from {path} (ansible-playbook exited {done.returncode}):\n"
            f"{done.stderr.strip() or done.stdout.strip()[-2000:]}"
        ) from None


_INVENTORIES: dict = {}  # one ansible-playbook run per inventory per command


def _inventory(options: Options) -> tuple:
    inventory = options.inventory or os.environ.get("WHISPERLAB_INVENTORY")
    if not inventory:
        return None, None
    if inventory not in _INVENTORIES:
        _INVENTORIES[inventory] = inventory_servers(inventory)
    return inventory, _INVENTORIES[inventory]


def resolve(label: str, options: Options) -> Endpoint:
    """The endpoint a command-line name means, with its key, CA and model."""
    model = options.for_label(options.models, label) or "whisper-1"
    key_file = options.for_label(options.key_files, label)
    key_env = options.for_label(options.key_envs, label)
    ca_file = options.for_label(options.ca_files, label)

    def explicit_key() -> Optional[str]:
        if key_file:
            return read_key_file(key_file)
        if key_env:
            return read_key_env(key_env)
        return None

    if label == "openai":
        base = os.environ.get("OPENAI_BASE_URL", "").strip() or OPENAI_URL
        key = explicit_key() or read_key_env("OPENAI_API_KEY")
        return Endpoint(label, base.rstrip("/"), key, ca_file, model, is_openai=True)
    if label.startswith(("http://", "https://")):
        base = label.rstrip("/")
        if not base.endswith("/v1"):
            raise EndpointError(f"{label}: a URL endpoint is the API's base, ending in /v1 (as OPENAI_BASE_URL is)")
        key = explicit_key() or os.environ.get("WHISPERLAB_API_KEY", "").strip() or None
        return Endpoint(label, base, key, ca_file, model)

    inventory, lab = _inventory(options)
    if not inventory:
        raise EndpointError(
            f"{label!r} is not 'openai' or a URL; to name a server, give --inventory (or WHISPERLAB_INVENTORY)"
        )
    server = next((s for s in lab["servers"] if label in (s["alias"], s["short"], s["name"])), None)
    if server is None:
        names = ", ".join(s["alias"] for s in lab["servers"]) or "none"
        raise EndpointError(f"no server {label!r} in {inventory} (its servers: {names})")
    # The controller may not resolve the clients' alias; the address is in the certificate too.
    base = f"{server['scheme']}://{server['address']}:{server['port']}/v1"
    key = explicit_key() or read_key_file(lab["api_key_file"])
    ca = ca_file or (lab["ca_cert"] if lab["tls"] else None)
    return Endpoint(label, base, key, ca, model)


def servers(options: Options) -> list:
    """Every server of the inventory, in the order the clients try them."""
    inventory, lab = _inventory(options)
    if not inventory:
        raise EndpointError("give --server (one or more) or --inventory")
    return [resolve(server["alias"], options) for server in lab["servers"]]
