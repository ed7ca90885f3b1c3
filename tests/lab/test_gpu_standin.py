"""Lab-only, with a STAND-IN GPU: the second server's nvidia-smi is made to report a GPU that is not
there (no driver, no CUDA: the real CTranslate2 on the host sees none). What this proves is the roles'
GPU branch, their decisions, not that a GPU works:

- check mode shows what a GPU box gets: the CUDA wheels, --device cuda, LD_LIBRARY_PATH naming only
  the wheels' folders, and a health gate that requires device cuda
- a real run whose CUDA does not load stops at the device check, before any restart, with the old
  server still serving
- a Linux NVIDIA driver package inside WSL is refused
"""

from __future__ import annotations

import json

import pytest
import requests

from whisperlab_testkit.lab import SERVING, a_release, api_key

GROUP = "clients"  # run once, from the lab's one client; the tests reach the server themselves
STANDIN = "/etc/whisperlab-standin-gpu"
GPU_NAME = "NVIDIA GeForce RTX 4070 (whisperlab stand-in)"


@pytest.fixture(scope="module")
def box(last_server):
    """The last server of the lab, its stand-in nvidia-smi reporting a GPU for the module's tests."""
    server = last_server["host"]
    assert server.run(f"echo '{GPU_NAME}' | sudo tee {STANDIN} >/dev/null").rc == 0
    assert GPU_NAME in server.check_output("/usr/lib/wsl/lib/nvidia-smi --query-gpu=name --format=csv,noheader")
    yield last_server
    server.run(f"sudo rm -f {STANDIN}")


def main_pid(box) -> str:
    return box["host"].check_output(f"{box['systemctl']} show -p MainPID --value whisper.service")


def health(box) -> dict:
    """The full /health, which needs the key (without it, /health says only its status)."""
    headers = {"Authorization": f"Bearer {api_key()}"}
    return requests.get(f"{box['url']}/health", headers=headers, timeout=10).json()


def test_check_mode_shows_the_gpu_branch(box, server_play):
    result = server_play(box, "--check", "--diff")
    assert result.returncode == 0
    out = result.stdout
    assert "No NVIDIA GPU found" not in out
    # The pinned wheels would be installed into the venv.
    assert "TASK [whisper_server : Install the CUDA libraries into the venv]" in out
    cuda_task = out.split("TASK [whisper_server : Install the CUDA libraries into the venv]")[1].split("TASK [")[0]
    assert f"changed: [{box['name']}]" in cuda_task
    # The device check will run for cuda (the env file's diff is hidden: it holds the key), and the
    # unit's LD_LIBRARY_PATH names only the wheels' folders.
    assert "TASK [whisper_server : Check with the unit's environment that the server can use the device cuda]" in out
    ld_lines = [line for line in out.splitlines() if line.startswith("+Environment=LD_LIBRARY_PATH=")]
    assert len(ld_lines) == 1, out
    folders = ld_lines[0].split("=", 2)[2].split(":")
    assert [f.rsplit("/site-packages/", 1)[1] for f in folders] == ["nvidia/cublas/lib", "nvidia/cudnn/lib"]
    assert all(f.startswith(box["home"]) for f in folders)
    # The gate will not accept a server that fell back to the CPU (Ansible wraps the message's lines).
    assert "device cuda (device cuda asked for)" in " ".join(out.split())


def test_a_gpu_whose_cuda_does_not_load_stops_before_any_restart(box, server_play, tmp_path):
    before = main_pid(box)
    assert health(box)["status"] in SERVING
    # An upgrade (a new release: its wheel is installed and a restart is queued), with the CUDA wheels
    # left out: CUDA cannot load, as on a box with a broken setup. The running server keeps the code it
    # loaded. test_serving.py, next in name order (and in the lab sequence), ends with the run that puts
    # this box back.
    release, _ = a_release(tmp_path)
    result = server_play(box, "-e", json.dumps({"cuda_pip_packages": []}), repo=release)
    assert result.returncode != 0
    assert "cannot run the server on cuda" in result.stdout
    assert "sees no CUDA GPU" in result.stdout
    assert "The running server was not restarted" in result.stdout
    assert "RUNNING HANDLER [whisper_server : Restart the whisper server]" in result.stdout, "no restart was pending"
    # ansible.cfg forces handlers on a failed run; the restart handler still stood aside.
    assert main_pid(box) == before
    assert health(box)["status"] in SERVING and health(box)["device"] == "cpu"
    env = box["host"].check_output(f"sudo cat {box['home']}/.config/whisper-server/whisper-server.env")
    assert "WHISPER_DEVICE=cuda" not in env


def test_a_linux_driver_package_inside_wsl_is_refused(box, run_role):
    # A stand-in package with the name of Ubuntu's libcuda.so.1 package, which the old guard missed.
    name = "libnvidia-compute-550"
    build = (
        f"set -e; d=$(mktemp -d); mkdir $d/DEBIAN; "
        f"printf 'Package: {name}\\nVersion: 550.0-0whisperlab\\nArchitecture: all\\n"
        f"Maintainer: whisperlab lab <lab@localhost>\\nDescription: whisperlab lab stand-in, empty\\n' "
        f">$d/DEBIAN/control; dpkg-deb -b $d /tmp/{name}.deb >/dev/null; sudo dpkg -i /tmp/{name}.deb >/dev/null"
    )
    assert box["host"].run(build).rc == 0
    try:
        # wsl_detected is what the wsl role would say on this (forced-WSL) box.
        out = run_role(box["name"], "cuda", expect_failure=True, wsl_detected=True)
        assert f"A Linux NVIDIA driver is installed inside WSL ({name})" in out
    finally:
        box["host"].run(f"sudo dpkg -r {name} >/dev/null; rm -f /tmp/{name}.deb")
