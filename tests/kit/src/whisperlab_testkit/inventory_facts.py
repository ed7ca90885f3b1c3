"""What the roles derive from the inventory, derived the same way for the checks."""

from __future__ import annotations

from pathlib import Path


def server_user(variables: dict) -> str:
    """The account that runs the server: whisper_server_user, else whisperlab_server_user, else the
    dedicated account's default name."""
    return variables.get("whisper_server_user") or variables.get("whisperlab_server_user") or "whisper"


def server_alias(variables: dict, name: str) -> str:
    """A server's name on the clients, as the whisperlab role gives it: whisperlab_host_alias, else
    whisperlab_server_alias for the first server of the group and wsl2.home, wsl3.home, ... after it."""
    if variables.get("whisperlab_host_alias"):
        return variables["whisperlab_host_alias"]
    first = variables.get("whisperlab_server_alias", "wsl.home")
    index = variables["groups"][variables.get("whisperlab_server_group", "whisper_servers")].index(name) + 1
    label, dot, rest = first.partition(".")
    return first if index == 1 else f"{label}{index}{dot}{rest}"


def uses_tls(variables: dict) -> bool:
    """whisperlab_tls (on by default): the servers speak HTTPS, through their TLS front."""
    return bool(variables.get("whisper_server_tls", variables.get("whisperlab_tls", True)))


def server_base(variables: dict) -> str:
    """A server's base URL from the controller, by its address: https (the lab's checks trust the
    inventory's CA, REQUESTS_CA_BUNDLE) unless whisperlab_tls is false."""
    port = int(variables.get("whisper_server_port", variables.get("whisperlab_server_port", 8000)))
    return f"{'https' if uses_tls(variables) else 'http'}://{variables['ansible_host']}:{port}"


def backend_port(variables: dict) -> int:
    """Where the server itself listens on its box: behind the TLS front, the port plus 10000."""
    port = int(variables.get("whisper_server_port", variables.get("whisperlab_server_port", 8000)))
    return int(variables.get("whisper_server_backend_port", port + 10000)) if uses_tls(variables) else port


# The client may be a real Mac: no getent, no sha256sum, no ss, and homes not always /Users/<name>.
# These helpers ask each system its own way (testinfra's own system_info tells which).


def is_darwin(host) -> bool:
    return host.system_info.type == "darwin"


def home_of(host, user: str) -> str:
    """A user's home: Open Directory on macOS (dscl), the passwd database elsewhere."""
    if is_darwin(host):
        out = host.check_output(f"dscl . -read /Users/{user} NFSHomeDirectory")
        return out.split(":", 1)[1].strip()
    return host.user(user).home


PYTHON_SHA256 = "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())"
PYTHON_RESOLVE = (
    "import socket, sys; "
    "print(' '.join(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], None, socket.AF_INET)})))"
)


def sha256_of(host, path: str) -> str:
    """Through the host's Python (Ansible needs one on every host): the same on macOS and Linux."""
    return host.check_output(f"python3 -c \"{PYTHON_SHA256}\" '{path}'")


def addresses_of(host, name: str) -> list[str]:
    """What the host's own resolver (hosts file included) says a name is, as a program sees it."""
    return host.check_output(f'python3 -c "{PYTHON_RESOLVE}" {name}').split()


def listening_on(host, port: int) -> bool:
    if is_darwin(host):
        lines = host.check_output("netstat -an -p tcp").splitlines()
        return any("LISTEN" in line and line.split()[3].endswith(f".{port}") for line in lines if len(line.split()) > 3)
    return host.socket(f"tcp://0.0.0.0:{port}").is_listening or host.socket(f"tcp://:::{port}").is_listening


def server_facts(server, inventory: str | Path) -> dict:
    """Everything the checks need of one server box, resolved from its inventory variables the way the
    roles resolve them, with its testinfra host: the one server-facts dict of the checks."""
    variables = server.ansible.get_variables()
    inventory_dir = Path(inventory).resolve().parent
    name = variables["inventory_hostname"]
    user = server_user(variables)
    passwd = server.user(user)
    tls = uses_tls(variables)
    port = int(variables.get("whisper_server_port", variables.get("whisperlab_server_port", 8000)))
    # Where the server answers on its own host: the bound address, or loopback when it binds them all.
    bound = str(variables.get("whisper_server_host", "0.0.0.0"))
    local = "127.0.0.1" if bound in ("0.0.0.0", "", "::") else bound
    tls_dir = f"{passwd.home}/.config/whisper-server/tls"
    ca_dir = variables.get("whisperlab_tls_ca_dir", "{{ inventory_dir }}/.secrets/tls")
    key_file = variables.get("whisperlab_api_key_file", "{{ inventory_dir }}/.secrets/whisper_api_key")
    as_user = f"sudo -u {user} XDG_RUNTIME_DIR=/run/user/{passwd.uid}"
    return {
        "name": name,
        "host": server,
        "inventory": str(Path(inventory).resolve()),
        "address": str(variables.get("ansible_host", name)),
        "alias": server_alias(variables, name),
        "user": user,
        "uid": passwd.uid,
        "home": passwd.home,
        "as_user": as_user,
        "systemctl": f"{as_user} systemctl --user",
        "tls": tls,
        "port": port,
        "backend_port": backend_port(variables),
        # From the controller, by its address (the checks trust the inventory's CA).
        "url": server_base(variables),
        # On the box itself: through the TLS front, trusting the CA alone (as the clients do).
        "bind": bound or "0.0.0.0",
        "base": f"{'https' if tls else 'http'}://{f'[{local}]' if ':' in local else local}:{port}",
        "curl": f"curl -sS --cacert {tls_dir}/ca.crt" if tls else "curl -sS",
        "tls_dir": tls_dir,
        "ca_cert": Path(ca_dir.replace("{{ inventory_dir }}", str(inventory_dir))) / "ca.crt",
        "key_file": key_file.replace("{{ inventory_dir }}", str(inventory_dir)),
        "wsl_force": bool(variables.get("wsl_force", False)),
        "monitor": variables.get("whisperlab_monitor_command", "/usr/local/bin/whisperlab-monitor"),
        # Home Assistant's port (whisper_server_wyoming), or None; and the idle unload (0: never).
        "wyoming_port": int(variables.get("whisper_server_wyoming_port", 10300))
        if variables.get("whisper_server_wyoming", False)
        else None,
        "home_assistant": list(variables.get("whisperlab_home_assistant_addresses", [])),
        "idle_unload": int(variables.get("whisper_server_idle_unload_seconds", 0)),
        "venv_python": f"{passwd.home}/.local/share/whisper-server/venv/bin/python",
    }
