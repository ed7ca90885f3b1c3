"""Lab-only: the private link. Every server speaks TLS with a certificate the inventory's CA signed; a
client that does not trust that CA is refused before it sends anything, and a capture on the lab's
bridge, taken while the mac host's skill and real OpenClaw transcribe, finds the key, an Authorization
line and the transcript nowhere in clear text, though it does find a control request sent in clear."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections import defaultdict
from pathlib import Path

import pytest
import requests
import testinfra

from whisperlab_testkit import support
from whisperlab_testkit.lab import api_key, mac

REPO = Path(__file__).resolve().parents[2]

GROUP = "clients"
BRIDGE = "wl-br0"
WORK = "whisperlab-tls"  # in the lab user's home, where SSH commands start
NOTE = f"{WORK}/voice.ogg"
SKILL = ".openclaw/workspace/skills/openai-whisper-api/scripts/transcribe.sh"
CONTROL = b"Authorization: Bearer whisperlab-capture-control"
MAX_WER = 0.3


class Capture:
    """Every TCP payload that crosses the lab's bridge, as tcpdump would see it (a raw packet socket in
    promiscuous mode, so frames the bridge forwards between hosts are seen too), joined per flow."""

    def __init__(self, interface: str):
        self.flows: dict[tuple, bytearray] = defaultdict(bytearray)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.bind((interface, 0))
        # PACKET_ADD_MEMBERSHIP (1) of PACKET_MR_PROMISC (1) at SOL_PACKET (263).
        membership = struct.pack("iHH8s", socket.if_nametoindex(interface), 1, 0, b"")
        self.sock.setsockopt(263, 1, membership)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                frame = self.sock.recv(65535)
            except TimeoutError:
                continue
            if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:  # IPv4, TCP
                continue
            ip_header = (frame[14] & 0x0F) * 4
            tcp = 14 + ip_header
            total = struct.unpack("!H", frame[16:18])[0]
            sport, dport = struct.unpack("!HH", frame[tcp : tcp + 4])
            payload = frame[tcp + (frame[tcp + 12] >> 4) * 4 : 14 + total]
            if payload:
                flow = (socket.inet_ntoa(frame[26:30]), sport, socket.inet_ntoa(frame[30:34]), dport)
                self.flows[flow] += payload

    def stop(self):
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def note():
    mac(f"rm -rf {WORK} && mkdir {WORK} && cat > {NOTE}", stdin=support.speech("report", "ogg"))
    yield NOTE
    mac(f"rm -rf {WORK}")


def test_a_client_without_the_ca_is_refused_before_it_sends_anything(host, note, request):
    # The mac's own trust store does not know the lab's CA: curl and the skill (told to trust the
    # system's CAs instead) refuse, the skill without retrying and without falling back to the cloud.
    plain_curl = mac("curl -sS --max-time 10 https://wsl.home:8000/health")
    assert plain_curl.returncode == 60, plain_curl.stderr.decode()
    skill = mac(f"WHISPER_CA_FILE=/etc/ssl/certs/ca-certificates.crt {SKILL} {NOTE} --out {WORK}/voice.txt")
    assert skill.returncode == 1
    assert "failed its TLS check, so nothing was sent" in skill.stderr.decode(), skill.stderr.decode()
    assert mac(f"test -e {WORK}/voice.txt").returncode != 0
    # Python's own CAs (certifi) do not know it either.
    first = host.ansible.get_variables()["groups"]["whisper_servers"][0]
    inventory = request.config.option.ansible_inventory
    address = testinfra.get_host(f"ansible://{first}", ansible_inventory=inventory).ansible.get_variables()[
        "ansible_host"
    ]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://{address}:8000/health", timeout=10, verify=requests.certs.where())
    # A plain-HTTP client on the port gets no answer from the server.
    plain = mac("curl -sS --max-time 10 -o /dev/null -w '%{http_code}' http://wsl.home:8000/health")
    assert plain.stdout.decode() in ("", "000"), plain.stdout


def test_the_key_and_the_words_never_cross_the_bridge_in_clear_text(note):
    key = api_key().encode()
    capture = Capture(BRIDGE)
    try:
        # The control: a request in clear text across the same bridge, to the same port. The capture
        # must see it, or it proves nothing.
        mac(f"curl -sS --max-time 5 -H '{CONTROL.decode()}' http://wsl.home:8000/health || true")
        skill = mac(f"{SKILL} {NOTE} --out {WORK}/voice.txt")
        assert skill.returncode == 0, skill.stderr.decode()
        openclaw = mac(f"openclaw infer audio transcribe --file {NOTE} --json")
        assert openclaw.returncode == 0, openclaw.stderr.decode()
    finally:
        capture.stop()
    for heard in (mac(f"cat {WORK}/voice.txt").stdout.decode(), json.loads(openclaw.stdout)["outputs"][0]["text"]):
        assert support.wer(support.SENTENCES["report"], heard) <= MAX_WER, heard

    to_servers = {flow: data for flow, data in capture.flows.items() if 8000 in (flow[1], flow[3])}
    control = [flow for flow, data in to_servers.items() if CONTROL in data]
    assert control, f"the capture missed the clear-text control request ({len(capture.flows)} flows seen)"
    # Two transcriptions (the skill's, OpenClaw's) to the first server, each on a TLS connection.
    requests_sent = [flow for flow, data in to_servers.items() if flow[3] == 8000 and flow not in control]
    assert len(requests_sent) >= 2, to_servers.keys()
    assert all(to_servers[flow][:2] == b"\x16\x03" for flow in requests_sent), "a connection did not start TLS"
    assert sum(len(to_servers[flow]) for flow in requests_sent) > 10_000, "the audio did not cross the bridge"
    words = support.SENTENCES["report"].split()[:4]
    for flow, data in capture.flows.items():
        assert key not in data, f"the API key crossed the bridge in clear text ({flow})"
        if flow not in control:
            assert b"Authorization:" not in data, f"an Authorization line crossed the bridge in clear text ({flow})"
            assert " ".join(words).encode() not in data, f"the transcript crossed the bridge in clear text ({flow})"
