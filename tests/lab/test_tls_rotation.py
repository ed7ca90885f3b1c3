"""Lab-only: a box's TLS key rotated (whisper_server_tls_key_generation) and its certificate signed
again by the same CA; the clients need nothing new. It changes only the lab's last server, so the lab
sequence runs it beside the OpenClaw checks on the mac host."""

from __future__ import annotations

import re

from whisperlab_testkit.lab import mac

GROUP = "clients"  # run once, from the lab's one client; the test reaches the server itself


def test_raising_the_key_generation_replaces_the_key_and_the_clients_keep_trusting_it(last_server, server_play):
    """whisper_server_tls_key_generation rotates a box's key (made anew on the box) and so its certificate,
    signed by the same CA: the clients need nothing new. The same generation again changes nothing."""
    box = last_server
    tls_dir = f"{box['home']}/.config/whisper-server/tls"

    def key_and_certificate() -> tuple[str, str]:
        key = box["host"].check_output(f"sudo openssl pkey -in {tls_dir}/server.key -pubout | sha256sum")
        certificate = box["host"].check_output(f"sudo openssl x509 -in {tls_dir}/server.crt -noout -fingerprint")
        return key, certificate

    alias = mac(f"getent hosts {box['address']}").stdout.decode().split()[1]
    reach = f"curl -sS --max-time 10 --cacert ~/.config/whisperlab/ca.pem https://{alias}:8000/health"
    before = key_and_certificate()
    try:
        rotated = server_play(box, "-e", "whisper_server_tls_key_generation=2")
        assert rotated.returncode == 0
        after = key_and_certificate()
        assert after[0] != before[0], "the key was not replaced"
        assert after[1] != before[1], "the certificate was not signed again"
        assert box["host"].run(f"sudo openssl verify -CAfile {tls_dir}/ca.crt {tls_dir}/server.crt").rc == 0
        assert mac(reach).returncode == 0, "the client does not trust the rotated box"
        again = server_play(box, "-e", "whisper_server_tls_key_generation=2")
        assert re.search(rf"{box['name']}\s+: ok=\d+\s+changed=0\s", again.stdout), "the same generation changed things"
        assert key_and_certificate() == after
    finally:
        assert server_play(box).returncode == 0
    assert mac(reach).returncode == 0
