"""The WSL box after site.yml: wsl.conf, linger, the user unit, the env file, and a live server that
transcribes, checks its key and logs request ids."""

from __future__ import annotations

import json
import shlex
import uuid
from pathlib import Path

import pytest
from inventory_facts import server_user

import support

GROUP = "whisper_servers"


@pytest.fixture(scope="module")
def facts(host, request):
    """The role's settings for this host, resolved the way the role resolves them."""
    variables = host.ansible.get_variables()
    inventory_dir = Path(request.config.option.ansible_inventory).resolve().parent
    key_file = variables.get("whisperlab_api_key_file", "{{ inventory_dir }}/.secrets/whisper_api_key")
    user = server_user(variables)
    passwd = host.user(user)
    # Where the server answers on its own host: the bound address, or loopback when it binds them all.
    bound = str(variables.get("whisper_server_host", "0.0.0.0"))
    address = "127.0.0.1" if bound in ("0.0.0.0", "", "::") else bound
    return {
        "bind": bound or "0.0.0.0",
        "base": f"http://{f'[{address}]' if ':' in address else address}:"
        f"{int(variables.get('whisper_server_port', variables.get('whisperlab_server_port', 8000)))}",
        "user": user,
        "uid": passwd.uid,
        "home": passwd.home,
        "port": int(variables.get("whisper_server_port", variables.get("whisperlab_server_port", 8000))),
        "key_file": key_file.replace("{{ inventory_dir }}", str(inventory_dir)),
        "wsl_force": bool(variables.get("wsl_force", False)),
    }


@pytest.fixture(autouse=True)
def as_root(host):
    """The service account's home is private (0700): the checks look into it as root."""
    with host.sudo():
        yield


def as_user(facts, command: str) -> str:
    return f"sudo -u {facts['user']} XDG_RUNTIME_DIR=/run/user/{facts['uid']} {command}"


def is_wsl(host, facts) -> bool:
    return facts["wsl_force"] or "microsoft" in host.sysctl("kernel.osrelease").lower()


def api_key(facts) -> str:
    return Path(facts["key_file"]).read_text().strip()


def health(host, facts) -> dict:
    out = host.check_output(f"curl -sS --max-time 10 {facts['base']}/health")
    return json.loads(out)


def test_wsl_conf_enables_systemd(host, facts):
    if not is_wsl(host, facts):
        pytest.skip("not a WSL host")
    conf = host.file("/etc/wsl.conf")
    assert conf.exists and conf.user == "root"
    lines = [line.strip().replace(" ", "") for line in conf.content_string.splitlines()]
    boot = lines.index("[boot]")
    section = lines[boot + 1 :]
    section = section[: next((i for i, line in enumerate(section) if line.startswith("[")), len(section))]
    assert "systemd=true" in section


def test_nvidia_smi_on_path_for_non_interactive_shells(host, facts):
    if not host.file("/usr/lib/wsl/lib/nvidia-smi").exists:
        pytest.skip("no /usr/lib/wsl/lib/nvidia-smi (no NVIDIA driver on the Windows side)")
    # host.run is a non-interactive SSH command: no profile, no bashrc.
    assert host.check_output("command -v nvidia-smi") == "/usr/local/bin/nvidia-smi"


def test_linger_is_on(host, facts):
    assert host.file(f"/var/lib/systemd/linger/{facts['user']}").exists
    assert host.check_output(f"loginctl show-user {facts['user']} -p Linger") == "Linger=yes"


def test_unit_enabled_and_active(host, facts):
    assert host.check_output(as_user(facts, "systemctl --user is-enabled whisper.service")) == "enabled"
    assert host.check_output(as_user(facts, "systemctl --user is-active whisper.service")) == "active"
    unit = host.file(f"{facts['home']}/.config/systemd/user/whisper.service").content_string
    assert "Restart=always" in unit and "NoNewPrivileges=yes" in unit


def test_the_server_runs_as_an_unprivileged_account_of_its_own(host, facts):
    login = host.ansible.get_variables().get("ansible_user")
    assert facts["user"] != login, "the service account is not the admin login"
    assert host.file(facts["home"]).user == facts["user"] and host.file(facts["home"]).mode == 0o700
    groups = host.user(facts["user"]).groups
    assert not {"sudo", "admin", "wheel"} & set(groups), groups
    assert "is not allowed to run sudo" in host.run(f"sudo -l -U {facts['user']}").stdout
    # A locked password: nobody logs in to it with one.
    assert host.check_output(f"passwd -S {facts['user']}").split()[1] == "L"
    pid = host.check_output(as_user(facts, "systemctl --user show -p MainPID --value whisper.service"))
    assert host.check_output(f"ps -o user= -p {pid}") == facts["user"]


def test_port_listening(host, facts):
    assert host.socket(f"tcp://{facts['bind']}:{facts['port']}").is_listening


def test_env_file_is_private(host, facts):
    env = host.file(f"{facts['home']}/.config/whisper-server/whisper-server.env")
    assert env.exists
    assert env.mode == 0o600
    assert env.user == facts["user"]
    assert env.contains("^WHISPER_API_KEY=.")


def test_controller_key_is_private(facts):
    key = Path(facts["key_file"])
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(api_key(facts)) >= 32


def test_health_ready_with_expected_model(host, facts):
    env = host.file(f"{facts['home']}/.config/whisper-server/whisper-server.env").content_string
    model = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("WHISPER_MODEL="))
    body = health(host, facts)
    assert body["status"] == "ready"
    assert body["model"] == model
    assert host.file(model + "/model.bin").exists


@pytest.fixture(scope="module")
def sample_on_host(host, tmp_path_factory):
    local = tmp_path_factory.mktemp("sample") / "note.ogg"
    local.write_bytes(support.speech("report", "ogg"))
    remote = host.check_output("mktemp --suffix=.ogg")
    host.ansible("copy", f"src={local} dest={remote} mode=0644", check=False)
    yield remote
    host.ansible("file", f"path={remote} state=absent", check=False)


def transcribe(host, facts, sample: str, key: str | None, request_id: str):
    auth = f"-H {shlex.quote('Authorization: Bearer ' + key)} " if key else ""
    command = (
        f"curl -sS --max-time 120 -w '\\n%{{http_code}}' {auth}-H 'X-Request-ID: {request_id}' "
        f"-F file=@{sample} -F model=whisper-1 {facts['base']}/v1/audio/transcriptions"
    )
    body, _, status = host.check_output(command).rpartition("\n")
    return int(status), json.loads(body)


def test_real_transcription(host, facts, sample_on_host):
    status, body = transcribe(host, facts, sample_on_host, api_key(facts), f"testinfra-{uuid.uuid4().hex}")
    assert status == 200, body
    assert support.wer(support.SENTENCES["report"], body["text"]) <= 0.3


def test_missing_key_gets_401_and_the_log_records_it(host, facts, sample_on_host):
    request_id = f"testinfra-nokey-{uuid.uuid4().hex}"
    status, body = transcribe(host, facts, sample_on_host, None, request_id)
    assert status == 401
    assert body["error"]["code"] == "missing_api_key"
    log = host.file(f"{facts['home']}/.local/state/whisper-server/whisper-server.log")
    assert log.contains(f"request_id={request_id} .*status=401")
    assert not log.contains(api_key(facts))


def test_gpu_when_present(host, facts):
    smi = host.run("PATH=$PATH:/usr/lib/wsl/lib nvidia-smi -L")
    if smi.rc != 0:
        pytest.skip("no NVIDIA GPU on this host (nvidia-smi absent or failing): the server runs on the CPU")
    assert host.run("nvidia-smi -L").rc == 0, "nvidia-smi must be on PATH for non-interactive shells"
    body = health(host, facts)
    assert body["device"] == "cuda", body.get("warnings")
    assert body["gpu"]
