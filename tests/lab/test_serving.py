"""Lab-only: the server play on the last server host, in three situations a real lab meets, set up
together so that they share the play's runs (each server play costs about a minute here):

- an upgrade interrupted between copying the new wheel and installing it is finished by the next run
- a server bound to one address (whisper_server_host) passes its health gate and the testinfra checks
- whisper_server_tls_key_generation raised rotates the box's key (made anew on the box) and so its
  certificate, signed by the same CA: the clients need nothing new; the same run again changes nothing

The runs: the interrupted one (a new release, failing before its install); the next one, of that
release with the box bound to its address and the key's generation raised; the same again; and, after
the checks, the ordinary run that puts the box back as the lab had it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from whisperlab_testkit.lab import a_release, mac

REPO = Path(__file__).resolve().parents[2]
GROUP = "clients"  # run once, from the lab's one client; the tests reach the server themselves


def installed_init(box) -> str:
    """The installed package's __init__.py (the service account's home is private: read as root)."""
    venv = f"{box['home']}/.local/share/whisper-server/venv"
    return box["host"].check_output(f"sudo sh -c 'cat {venv}/lib/python3*/site-packages/whisper_server/__init__.py'")


def key_and_certificate(box) -> tuple[str, str]:
    tls_dir = f"{box['home']}/.config/whisper-server/tls"
    key = box["host"].check_output(f"sudo openssl pkey -in {tls_dir}/server.key -pubout | sha256sum")
    certificate = box["host"].check_output(f"sudo openssl x509 -in {tls_dir}/server.crt -noout -fingerprint")
    return key, certificate


def client_reaches(box) -> bool:
    """Whether the mac host, with only the CA the roles gave it, gets /health over the box's alias."""
    alias = mac(f"getent hosts {box['address']}").stdout.decode().split()[1]
    reach = f"curl -sS --max-time 10 --cacert ~/.config/whisperlab/ca.pem https://{alias}:8000/health"
    return mac(reach, check=False).returncode == 0


@pytest.fixture(scope="module")
def runs(last_server, server_play, tmp_path_factory):
    """The last server through the runs above; what each showed. The box is put back afterwards."""
    box = last_server
    host_vars = Path(box["inventory"]).parent / "host_vars" / f"{box['name']}.yml"
    before_vars = host_vars.read_text() if host_vars.exists() else None
    made_dir = not host_vars.parent.exists()
    seen = {"key_before": key_and_certificate(box), "client_before": client_reaches(box)}
    release, seen["marker"] = a_release(tmp_path_factory.mktemp("serving"))
    try:
        # It builds and copies the new wheel, then fails before installing it (a pip install that cannot
        # succeed stands in for a lost connection or a full disk).
        bad = {"whisper_server_cuda_pip_packages": ["whisperlab-no-such-package==0"]}
        seen["broken"] = server_play(box, "-e", json.dumps(bad), repo=release)
        seen["init_after_broken"] = installed_init(box)
        host_vars.parent.mkdir(exist_ok=True)
        host_vars.write_text(
            (before_vars or "---\n") + f"whisper_server_host: {box['address']}\nwhisper_server_health_timeout: 30\n"
        )
        rotate = ("-e", "whisper_server_tls_key_generation=2")
        seen["next"] = server_play(box, *rotate, repo=release)
        seen["init_after_next"] = installed_init(box)
        seen["key_after"] = key_and_certificate(box)
        seen["again"] = server_play(box, *rotate, repo=release)
        seen["key_again"] = key_and_certificate(box)
        yield box, seen
    finally:
        if before_vars is None:
            host_vars.unlink(missing_ok=True)
            if made_dir:
                host_vars.parent.rmdir()
        else:
            host_vars.write_text(before_vars)
        assert server_play(box).returncode == 0, "the ordinary run did not put the box back"
    assert seen["marker"] not in installed_init(box)
    assert client_reaches(box), "the client does not reach the box once it is put back"


def test_an_interrupted_upgrade_is_finished_by_the_next_run(runs):
    box, seen = runs
    assert seen["broken"].returncode != 0
    assert seen["marker"] not in seen["init_after_broken"]
    # The next run must install the wheel it finds already copied.
    assert seen["next"].returncode == 0, seen["next"].stdout[-3000:]
    assert seen["marker"] in seen["init_after_next"]


def test_a_server_bound_to_one_address_passes_its_gate_and_checks(runs):
    box, seen = runs
    scheme = box["url"].split(":")[0]
    assert f"{scheme}://{box['address']}:8000/health must answer status ready" in seen["next"].stdout
    # Only that address listens; loopback does not answer (-k: refused before any certificate is seen).
    assert box["host"].run(f"curl -sS -k --max-time 5 {scheme}://127.0.0.1:8000/health").rc == 7
    checks = subprocess.run(
        [
            "python3",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(REPO / "tests" / "test_whisper_server.py"),
            # The box runs the release here, not this repository: the one check that compares the two
            # ran in the verify step, on every server.
            "-k",
            "not test_the_server_runs_this_repositorys_source",
            f"--hosts=ansible://{box['name']}",
            f"--ansible-inventory={box['inventory']}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    print(checks.stdout[-5000:])
    assert checks.returncode == 0
    assert " passed" in checks.stdout and "failed" not in checks.stdout


def test_raising_the_key_generation_replaces_the_key_and_the_clients_keep_trusting_it(runs):
    box, seen = runs
    assert seen["client_before"]
    assert seen["key_after"][0] != seen["key_before"][0], "the key was not replaced"
    assert seen["key_after"][1] != seen["key_before"][1], "the certificate was not signed again"
    tls_dir = f"{box['home']}/.config/whisper-server/tls"
    assert box["host"].run(f"sudo openssl verify -CAfile {tls_dir}/ca.crt {tls_dir}/server.crt").rc == 0
    assert client_reaches(box), "the client does not trust the rotated box"


def test_the_same_run_again_changes_nothing(runs):
    box, seen = runs
    again = seen["again"]
    assert again.returncode == 0
    assert re.search(rf"{box['name']}\s+: ok=\d+\s+changed=0\s", again.stdout), "the same run again changed things"
    assert seen["key_again"] == seen["key_after"]
