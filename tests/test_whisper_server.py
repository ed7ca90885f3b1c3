"""The WSL box after site.yml: wsl.conf, linger, the user unit, the env file and the key file, and a live
server that transcribes, checks its key (on /v1 and /metrics; /health tells only its status without it),
answers only to its own names, and logs request ids; the monitor the client's key runs."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from whisperlab_testkit import support
from whisperlab_testkit.inventory_facts import server_facts

GROUP = "whisper_servers"


@pytest.fixture(scope="module")
def facts(host, request):
    """The role's settings for this host, resolved the way the role resolves them."""
    return server_facts(host, request.config.option.ansible_inventory)


@pytest.fixture(autouse=True)
def as_root(host):
    """The service account's home is private (0700): the checks look into it as root."""
    with host.sudo():
        yield


def as_user(facts, command: str) -> str:
    return f"{facts['as_user']} {command}"


def is_wsl(host, facts) -> bool:
    return facts["wsl_force"] or "microsoft" in host.sysctl("kernel.osrelease").lower()


def api_key(facts) -> str:
    return Path(facts["key_file"]).read_text().strip()


def get(host, facts, path: str, key: str | None = None, host_header: str | None = None) -> tuple[int, str]:
    """(status, body) of a GET on the server from its own host. The key goes to curl on stdin."""
    headers = [f"Authorization: Bearer {key}"] if key else []
    headers += [f"Host: {host_header}"] if host_header else []
    feed = f"printf '%s\\n' {' '.join(shlex.quote(h) for h in headers)} | " if headers else ""
    out = host.check_output(
        f"{feed}{facts['curl']} --max-time 10 {'-H @- ' if headers else ''}-w '\\n%{{http_code}}' {facts['base']}{path}"
    )
    body, _, status = out.rpartition("\n")
    return int(status), body


def health(host, facts) -> dict:
    """The whole /health, asked with the key."""
    status, body = get(host, facts, "/health", api_key(facts))
    assert status in (200, 503), body
    return json.loads(body)


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


def env_file(host, facts) -> dict:
    content = host.file(f"{facts['home']}/.config/whisper-server/whisper-server.env").content_string
    return dict(line.split("=", 1) for line in content.splitlines() if "=" in line and not line.startswith("#"))


def test_env_file_is_private_and_names_the_key_file(host, facts):
    env = host.file(f"{facts['home']}/.config/whisper-server/whisper-server.env")
    assert env.exists
    assert env.mode == 0o600
    assert env.user == facts["user"]
    settings = env_file(host, facts)
    # The key is in a file of its own: every child of the server would inherit an environment variable.
    assert "WHISPER_API_KEY" not in settings
    assert settings["WHISPER_API_KEY_FILE"] == f"{facts['home']}/.config/whisper-server/api_key"


def test_key_file_is_private_and_holds_the_controllers_key(host, facts):
    key_file = host.file(f"{facts['home']}/.config/whisper-server/api_key")
    assert key_file.exists and key_file.mode == 0o600 and key_file.user == facts["user"]
    assert key_file.content_string.strip() == api_key(facts)


def test_the_server_process_has_no_key_in_its_environment(host, facts):
    pid = host.check_output(as_user(facts, "systemctl --user show -p MainPID --value whisper.service"))
    environ = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    assert not [line for line in environ.splitlines() if line.startswith("WHISPER_API_KEY=")]
    assert api_key(facts) not in environ


def test_controller_key_is_private(facts):
    key = Path(facts["key_file"])
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(api_key(facts)) >= 32


def test_health_ready_with_expected_model(host, facts):
    model = env_file(host, facts)["WHISPER_MODEL"]
    body = health(host, facts)
    # A server that steps aside when idle may be unloaded now: it still answers (the request loads it).
    assert body["status"] == "ready" or (facts["idle_unload"] and body["status"] == "unloaded")
    assert body["model"] == model
    assert host.file(model + "/model.bin").exists


def test_the_server_runs_this_repositorys_source(host, facts):
    # The wheel's version names the source it was built from; /health reports the installed one.
    dist = Path(__file__).resolve().parents[1] / "server" / "tools" / "dist.py"
    version = subprocess.run([sys.executable, str(dist), "--version"], capture_output=True, text=True, check=True)
    assert health(host, facts)["version"] == version.stdout.strip()


def test_health_without_the_key_tells_only_its_status(host, facts):
    status, body = get(host, facts, "/health")
    assert status == 200 and json.loads(body) in ({"status": "ready"}, {"status": "unloaded"})


def test_metrics_need_the_key(host, facts):
    status, body = get(host, facts, "/metrics")
    assert status == 401 and json.loads(body)["error"]["code"] == "missing_api_key"
    status, body = get(host, facts, "/metrics", api_key(facts))
    assert status == 200 and "whisper_requests_total" in body


def test_the_server_answers_only_to_its_own_names(host, facts):
    allowed = env_file(host, facts)["WHISPER_ALLOWED_HOSTS"].split(",")
    short = facts["alias"].split(".")[0]
    assert {facts["alias"], short, facts["address"], "localhost", "127.0.0.1", "::1"} <= set(allowed)
    for name in (facts["alias"], f"{short}:{facts['port']}", facts["address"], "localhost"):
        assert get(host, facts, "/health", host_header=name)[0] == 200, name
    # What a page that rebinds its own name to this address sends.
    status, body = get(host, facts, "/health", host_header=f"rebound.attacker.example:{facts['port']}")
    assert status == 400 and json.loads(body)["error"]["code"] == "host_not_allowed"


def test_the_monitor_shows_health_in_full_and_logs_without_control_characters(host, facts):
    monitor = facts["monitor"]
    out = host.check_output(as_user(facts, f"SSH_ORIGINAL_COMMAND=health {monitor}"))
    assert out.startswith("health: {") and json.loads(out.split(": ", 1)[1])["model"]
    # The installed monitor, pointed at a log with a traceback's escape sequences in it.
    folder = host.check_output("mktemp -d")
    try:
        host.check_output(f"printf 'ok\\tline\\n\\033[2J\\033]0;title\\007 bell\\r\\n' > {folder}/whisper-server.log")
        host.check_output(f"sed \"s#^LOG=.*#LOG='{folder}/whisper-server.log'#\" {monitor} > {folder}/monitor")
        out = host.run(f"SSH_ORIGINAL_COMMAND='logs 5' sh {folder}/monitor").stdout
        assert out == "ok\tline\n?[2J?]0;title? bell?\n", repr(out)
    finally:
        host.run(f"rm -rf {folder}")


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
        f"{facts['curl']} --max-time 120 -w '\\n%{{http_code}}' {auth}-H 'X-Request-ID: {request_id}' "
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


def tls_only(facts):
    if not facts["tls"]:
        pytest.skip("whisperlab_tls is false: plain HTTP by the user's choice")


def test_the_tls_front_runs_and_the_server_itself_listens_on_loopback_only(host, facts):
    tls_only(facts)
    assert host.check_output(as_user(facts, "systemctl --user is-enabled whisper-tls.service")) == "enabled"
    assert host.check_output(as_user(facts, "systemctl --user is-active whisper-tls.service")) == "active"
    pid = host.check_output(as_user(facts, "systemctl --user show -p MainPID --value whisper-tls.service"))
    assert host.check_output(f"ps -o user=,comm= -p {pid}").split() == [facts["user"], "stunnel4"]
    listeners = host.check_output("ss -Htlnp").splitlines()
    backend = [line.split()[3] for line in listeners if f":{facts['backend_port']} " in line + " "]
    assert backend == [f"127.0.0.1:{facts['backend_port']}"], listeners
    front = [line for line in listeners if line.split()[3].endswith(f":{facts['port']}")]
    assert front and all("stunnel" in line for line in front), front


def test_the_tls_key_stays_private_and_the_certificate_names_the_box(host, facts):
    tls_only(facts)
    key = host.file(f"{facts['tls_dir']}/server.key")
    assert key.user == facts["user"] and key.mode == 0o600
    assert host.file(facts["tls_dir"]).mode == 0o700
    text = host.check_output(f"openssl x509 -noout -ext subjectAltName -issuer -in {facts['tls_dir']}/server.crt")
    for name in (facts["alias"], facts["alias"].split(".")[0], facts["address"], "127.0.0.1"):
        assert (f"IP Address:{name}" if name[0].isdigit() else f"DNS:{name}") in text, text
    # Signed by the CA on the controller, which the box holds only the certificate of.
    ca = facts["ca_cert"].read_text()
    assert host.file(f"{facts['tls_dir']}/ca.crt").content_string == ca
    assert host.run(f"openssl verify -CAfile {facts['tls_dir']}/ca.crt {facts['tls_dir']}/server.crt").rc == 0
    assert not host.file(f"{facts['tls_dir']}/ca.key").exists


def test_a_client_without_the_ca_or_without_tls_gets_nothing(host, facts):
    tls_only(facts)
    # The system's trust store does not know the whisperlab CA: curl refuses before sending anything.
    untrusted = host.run(f"curl -sS --max-time 10 {facts['base']}/health")
    assert untrusted.rc == 60, (untrusted.rc, untrusted.stderr)
    # Plain HTTP on the port gets no answer from the server.
    plain = host.run(f"curl -sS --max-time 10 -w '%{{http_code}}' http://127.0.0.1:{facts['port']}/health")
    assert plain.rc != 0 or plain.stdout.strip().endswith("000"), plain.stdout


# The Wyoming client, run on the box by the server's own venv (it has the wyoming package), over loopback
# (always admitted): describe, then one utterance of a second of silence.
WYOMING_PROBE = """
import asyncio, sys
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

async def main(port):
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        info = Info.from_event(await client.read_event())
        print("model", info.asr[0].models[0].name)
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=bytes(32000)).event())
        await client.write_event(AudioStop().event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 60)
            if event.type in ("transcript", "error"):
                print(event.type)
                return

asyncio.run(main(int(sys.argv[1])))
"""


def test_the_wyoming_port_only_where_it_is_turned_on(host, facts):
    env = env_file(host, facts)
    port = facts["wyoming_port"]
    if port is None:
        assert env["WHISPER_WYOMING_PORT"] == "0"
        assert not host.socket("tcp://0.0.0.0:10300").is_listening
        return
    assert env["WHISPER_WYOMING_PORT"] == str(port)
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening
    allowed = env["WHISPER_WYOMING_ALLOWED_CLIENTS"].split(",")
    assert {"127.0.0.1/32", "::1/128"} <= {a if "/" in a else f"{a}/{128 if ':' in a else 32}" for a in allowed}
    assert set(facts["home_assistant"]) <= set(allowed) and facts["home_assistant"]
    out = host.check_output(f"{facts['venv_python']} -c {shlex.quote(WYOMING_PROBE)} {port}")
    # Home Assistant is shown the model's own name: its first alias that is not one of OpenAI's.
    openai_names = env["WHISPER_MODEL_NAMES"].split(",")
    own = [name for name in health(host, facts)["model_ids"] if name not in openai_names][0]
    assert out.splitlines() == [f"model {own}", "transcript"], out


def test_the_idle_unload_is_set_as_the_inventory_says(host, facts):
    assert env_file(host, facts)["WHISPER_IDLE_UNLOAD_SECONDS"] == str(facts["idle_unload"])
    assert health(host, facts)["idle_unload_s"] == (facts["idle_unload"] or None)
