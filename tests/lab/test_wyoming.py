"""Lab-only: Home Assistant's side of one GPU box. The controller, at the lab's bridge, stands in for the
Home Assistant host (whisperlab_home_assistant_addresses): it drives the first server's Wyoming port with
the `wyoming` package's own client, as Home Assistant's Wyoming integration does, while OpenAI-API
requests go to the same server; wyoming-faster-whisper, on the same model on the controller, is asked
the same clips beside it. The client (mac), not a Home Assistant host, gets nothing from the port. And
the client's restricted SSH key makes the second server step aside (`ssh wsl2 unload`)."""

from __future__ import annotations

import ipaddress
import threading

import requests

from whisperlab_testkit import support
from whisperlab_testkit import wyoming_kit as wk
from whisperlab_testkit.lab import api_key, mac

GROUP = "clients"  # once, from the controller: not once per host
MAX_WER = 0.25


def test_home_assistant_and_the_assistant_share_the_first_server(servers):
    first = servers[0]
    port = first["wyoming_port"]
    assert port, "the lab turns Wyoming on for its first server"
    info = wk.describe(first["address"], port)
    assert info.asr[0].name == "whisperlab" and info.asr[0].models[0].name == "tiny.en"
    headers = {"Authorization": f"Bearer {api_key()}"}
    before = requests.get(first["url"] + "/metrics", headers=headers, timeout=10).text
    results, errors = {}, []

    def over_wyoming(key):
        try:
            answer = wk.transcribe(first["address"], port, wk.pcm(support.speak(support.SENTENCES[key])), pace=0.5)
            assert answer.error is None, answer.error
            results[("wyoming", key)] = answer.text
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def over_http(key):
        try:
            response = requests.post(
                first["url"] + "/v1/audio/transcriptions",
                headers=headers,
                data={"model": "whisper-1"},
                files={"file": ("note.ogg", support.speech(key, "ogg"))},
                timeout=120,
            )
            assert response.status_code == 200, response.text
            results[("http", key)] = response.json()["text"]
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=f, args=(k,)) for k in support.SENTENCES for f in (over_wyoming, over_http)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not errors, errors
    assert len(results) == 2 * len(support.SENTENCES)
    for (side, key), text in results.items():
        assert support.wer(support.SENTENCES[key], text) <= MAX_WER, (side, key, text)
    after = requests.get(first["url"] + "/metrics", headers=headers, timeout=10).text
    counted = support.transcription_metrics(after)["ok"] - support.transcription_metrics(before)["ok"]
    assert counted == len(support.SENTENCES)
    log = first["host"].check_output(f"sudo cat {first['home']}/.local/state/whisper-server/whisper-server.log")
    # Logged like /v1's requests, with where they came from: the stand-in Home Assistant host.
    home_assistant = first["home_assistant"][0]
    wyoming_lines = [line for line in log.splitlines() if "method=WYOMING" in line and "status=200" in line]
    assert len([line for line in wyoming_lines if line.endswith(f"peer={home_assistant}")]) >= len(support.SENTENCES)


def test_side_by_side_with_wyoming_faster_whisper(servers, tmp_path, record_property):
    """The lab server against the peer Home Assistant users run, on the same model and clips."""
    first = servers[0]
    peer = wk.Peer(tmp_path, support.tiny_en())
    try:
        ours, theirs = [], []
        for key, text in support.SENTENCES.items():
            audio = wk.pcm(support.speak(text))
            mine, other = wk.transcribe(first["address"], first["wyoming_port"], audio), peer.transcribe(audio)
            assert mine.text is not None and other.text is not None, (mine.error, other.error)
            ours.append(support.wer(text, mine.text))
            theirs.append(support.wer(text, other.text))
            figures = f"lab {mine.seconds:.2f}s wer {ours[-1]:.3f}; peer {other.seconds:.2f}s wer {theirs[-1]:.3f}"
            record_property(key, figures)
        assert sum(ours) / len(ours) <= sum(theirs) / len(theirs) + 0.05, (ours, theirs)
    finally:
        peer.stop()


PROBE = (
    "import socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)\n"
    "try:\n"
    '    s.sendall(b\'{"type": "describe"}\\n\'); print(repr(s.recv(1024)))\n'
    "except ConnectionResetError:\n"
    "    print('reset')\n"
)


def test_a_host_that_is_not_home_assistant_gets_nothing(servers):
    """The mac is let through to the port (the lab has no firewall), and the server closes it at once."""
    first = servers[0]
    log_path = f"{first['home']}/.local/state/whisper-server/whisper-server.log"
    refusals = lambda: first["host"].check_output(f"sudo grep -c 'not in --wyoming-allowed-clients' {log_path} || true")  # noqa: E731
    before = int(refusals() or 0)
    result = mac(f'python3 -c "{PROBE}" {first["address"]} {first["wyoming_port"]}')
    out = result.stdout.decode().strip()
    # Connected (a refused or unreachable port would raise), then closed with nothing sent: no info.
    assert result.returncode == 0 and out in ("b''", "reset"), (out, result.stderr.decode())
    assert int(refusals()) == before + 1


def test_the_client_makes_the_second_server_step_aside(servers):
    second = servers[1]
    headers = {"Authorization": f"Bearer {api_key()}"}
    short = "wsl2"
    unloaded = mac(f"ssh -o BatchMode=yes {short} unload", check=True).stdout.decode()
    assert unloaded.startswith("unload: {") and '"status":"unloaded"' in unloaded.replace(" ", ""), unloaded
    health = requests.get(second["url"] + "/health", headers=headers, timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "unloaded"
    response = requests.post(
        second["url"] + "/v1/audio/transcriptions",
        headers=headers,
        data={"model": "whisper-1"},
        files={"file": ("note.ogg", support.speech("weather", "ogg"))},
        timeout=120,
    )
    assert response.status_code == 200 and support.wer(support.SENTENCES["weather"], response.json()["text"]) <= 0.3
    assert requests.get(second["url"] + "/health", headers=headers, timeout=10).json()["status"] == "ready"
    metrics = requests.get(second["url"] + "/metrics", headers=headers, timeout=10).text
    assert 'whisper_model_loads_total{reason="request"}' in metrics
    assert mac(f"ssh -o BatchMode=yes {short} load", check=True).stdout.decode().startswith("load: {")


def test_lan_check_judges_the_wyoming_port_both_ways(servers, run_role, host):
    """From the client, not a Home Assistant host, the port must not answer: the play passes. Named a Home
    Assistant host (which the server does not admit), the same client must get an answer: the play stops
    and says so."""
    out = run_role("clients", "lan_check")
    assert "Ask each Wyoming port for its info from the client" in out
    mac_address = host.ansible.get_variables()["ansible_host"]
    network = str(ipaddress.ip_network(f"{mac_address}/28", strict=False))  # a network holding it, as listed
    out = run_role("clients", "lan_check", expect_failure=True, lan_check_home_assistant_addresses=[network])
    assert "Home Assistant (this host) cannot use the Wyoming port wsl.home:10300" in out
