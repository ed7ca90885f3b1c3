"""Lab-only: the whisperlab command on the controller against the lab's two servers, which serve two
models (wsl tiny.en, wsl2 multilingual base), and against a stand-in "cloud" on the controller's
loopback reached as `openai`. Each report is checked against what the servers' own logs and /metrics
say; batch fails over when the first server is stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from whisperlab_testkit import support
from whisperlab_testkit.endpoint import StandIn
from whisperlab_testkit.lab import api_key, wait_ready

REPO = Path(__file__).resolve().parents[2]
GROUP = "clients"  # once, from the controller: not once per host
MAX_WER = 0.3
CLOUD_KEY = "sk-standin-cloud-0123456789"


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("notes")
    for key, sentence in support.SENTENCES.items():
        (folder / f"{key}.ogg").write_bytes(support.encode(support.speak(sentence), "ogg"))
    return folder


def whisperlab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "whisperlab", *args, "--inventory", str(REPO / "inventory/lab/hosts.yml")]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def metrics(server) -> dict:
    headers = {"Authorization": f"Bearer {api_key()}"}
    return support.transcription_metrics(requests.get(server["url"] + "/metrics", headers=headers, timeout=10).text)


def access_log(server) -> dict:
    """From the server's own log on its box."""
    path = f"{server['home']}/.local/state/whisper-server/whisper-server.log"
    return support.transcription_log(server["host"].check_output(f"sudo cat {path}"))


def model_of(server) -> str:
    headers = {"Authorization": f"Bearer {api_key()}"}  # without the key, /health says only whether it is ready
    return requests.get(server["url"] + "/health", headers=headers, timeout=10).json()["model"]


def test_compare_the_two_servers_matches_their_own_records(tmp_path, servers, notes):
    first, second = servers
    assert Path(model_of(first)).name != Path(model_of(second)).name, "the lab's servers serve two models"
    before = [metrics(first), metrics(second)]
    done = whisperlab("compare", first["alias"], second["alias"], str(notes), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert api_key() not in done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    after = [metrics(first), metrics(second)]
    assert report["a"]["url"] == f"https://{first['address']}:{first['port']}/v1"
    for side, server, was, now in (("a", first, before[0], after[0]), ("b", second, before[1], after[1])):
        log = access_log(server)
        for file in report["files"]:
            call = file[side]
            assert call["ok"], call
            assert support.wer(support.SENTENCES[Path(file["file"]).stem], call["text"]) <= MAX_WER, call["text"]
            [(status, audio_s, total_s)] = log[call["request_id"]]
            assert status == 200 and float(audio_s) == pytest.approx(file["seconds"], abs=0.05)
            assert total_s <= call["latency_s"]
        assert now["ok"] - was["ok"] == len(report["files"])
        assert now["audio_s"] - was["audio_s"] == pytest.approx(report["audio_minutes"] * 60, abs=0.1)
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_compare_with_the_cloud_keeps_each_key_to_its_endpoint(tmp_path, servers, notes):
    """`openai` is a stand-in here that answers with what was said: B's WER is then its WER against the
    truth. The cloud gets the cloud's key and never the lab's."""
    first, _second = servers
    truth = {f"{key}.ogg": sentence for key, sentence in support.SENTENCES.items()}
    cloud = StandIn(texts=truth)
    try:
        done = whisperlab(
            "compare",
            "openai",
            first["name"],  # by its host name this time
            str(notes),
            "--out",
            str(tmp_path),
            "--fail-above",
            str(MAX_WER),
            env={"OPENAI_BASE_URL": cloud.url, "OPENAI_API_KEY": CLOUD_KEY},
        )
    finally:
        cloud.close()
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["compared"] == len(truth)
    assert {seen.authorization for seen in cloud.seen} == {f"Bearer {CLOUD_KEY}"}
    assert report["cost"]["this_volume_usd"] == pytest.approx(round(report["audio_minutes"] * 0.006, 4))


def test_batch_fails_over_to_the_second_server(tmp_path, servers, notes):
    first, second = servers
    folder = tmp_path / "recordings"
    folder.mkdir()
    for note in notes.iterdir():
        (folder / note.name).write_bytes(note.read_bytes())
    before = metrics(second)
    assert first["host"].run(f"{first['systemctl']} stop whisper.service").rc == 0
    try:
        done = whisperlab("batch", "--no-progress", str(folder), "--summary-json", str(tmp_path / "summary.json"))
    finally:
        first["host"].run(f"{first['systemctl']} start whisper.service")
        wait_ready(first["url"], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["by_server"] == {second["alias"]: len(support.SENTENCES)}
    assert metrics(second)["ok"] - before["ok"] == len(support.SENTENCES)
    for key, sentence in support.SENTENCES.items():
        text = (folder / f"{key}.txt").read_text()
        assert support.wer(sentence, text) <= MAX_WER, text
