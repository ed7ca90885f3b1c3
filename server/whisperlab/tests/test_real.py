"""compare and batch against real whisper-server processes with real models: tiny.en as the GPU box, and
multilingual base as a stand-in "cloud" reached as `openai` (OPENAI_BASE_URL), since OpenAI cannot be
reached here. The report is checked against what the servers' own logs and /metrics say."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import whisperlab
from whisperlab import batch as batch_module
from whisperlab_testkit import support

pytestmark = pytest.mark.model

MAX_WER = 0.3  # tiny.en and base on espeak-ng's voice


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    box = support.start_server(tmp_path_factory.mktemp("box"), support.tiny_en(), key="sk-box-0123456789")
    cloud = support.start_server(tmp_path_factory.mktemp("cloud"), support.base(), key="sk-cloud-0123456789")
    yield box, cloud
    box.stop()
    cloud.stop()


def _log(server) -> dict:
    return support.transcription_log((server.log_dir / "whisper-server.log").read_text())


def _metrics(server) -> dict:
    return support.transcription_metrics(requests.get(server.url + "/metrics", headers=server.headers, timeout=10).text)


def test_compare_matches_what_the_servers_recorded(tmp_path, servers, notes):
    box, cloud = servers
    key = tmp_path / "box.key"
    key.write_text(box.key)
    key.chmod(0o600)
    before = {"box": _metrics(box), "cloud": _metrics(cloud)}
    out = tmp_path / "report"
    done = whisperlab(
        "compare",
        "openai",
        box.url + "/v1",
        *[str(path) for path in notes.values()],
        "--out",
        str(out),
        "--key-file",
        f"{box.url}/v1={key}",
        env={"OPENAI_BASE_URL": cloud.url + "/v1", "OPENAI_API_KEY": cloud.key},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert box.key not in done.stdout + done.stderr and cloud.key not in done.stdout + done.stderr
    report = json.loads((out / "report.json").read_text())
    after = {"box": _metrics(box), "cloud": _metrics(cloud)}

    for side, server, name in (("a", cloud, "cloud"), ("b", box, "box")):
        log = _log(server)
        for file in report["files"]:
            call = file[side]
            assert call["ok"], call
            sentence = support.SENTENCES[Path(file["file"]).stem]
            assert support.wer(sentence, call["text"]) <= MAX_WER, call["text"]
            # The server's own line for this request: answered once, the same audio, no slower than the client saw.
            [(status, audio_s, total_s)] = log[call["request_id"]]
            assert status == 200
            assert float(audio_s) == pytest.approx(file["seconds"], abs=0.05)
            assert total_s <= call["latency_s"]
        # /metrics counted exactly these requests and this much audio.
        assert after[name]["ok"] - before[name]["ok"] == len(notes)
        assert after[name]["audio_s"] - before[name]["audio_s"] == pytest.approx(report["audio_minutes"] * 60, abs=0.1)
        assert report[side]["error_rate"] == 0
    assert report["a"]["model"] == "whisper-1" and report["cost"]["price_per_minute_usd"] == 0.006
    assert (out / "report.png").stat().st_size > 10_000
    assert "A = openai" in done.stdout


def test_batch_interrupted_and_resumed_transcribes_each_file_once(tmp_path, servers, notes):
    box, _cloud = servers
    key = tmp_path / "box.key"
    key.write_text(box.key)
    folder = tmp_path / "recordings"
    folder.mkdir()
    files = {}
    for i in range(6):
        source = list(notes.values())[i % len(notes)]
        files[folder / f"{i}-{source.name}"] = source.stem
        (folder / f"{i}-{source.name}").write_bytes(source.read_bytes())
    command = [sys.executable, "-m", "whisperlab", "batch", "--no-progress", str(folder)]
    command += ["--server", box.url + "/v1", "--key-file", str(key)]
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(folder.glob("*.txt"))) < 2:
        assert time.monotonic() < deadline and running.poll() is None, running.communicate()
        time.sleep(0.05)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=120)
    assert running.returncode == 130, out + err
    first = len(list(folder.glob("*.txt")))
    assert first < len(files), "the run ended before it was interrupted; use more files"

    resumed = whisperlab("batch", "--no-progress", str(folder), "--server", box.url + "/v1", "--key-file", str(key))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"({len(files) - first} transcribed, {first} already done, 0 failed)" in resumed.stdout
    log = _log(box)
    for audio, key_name in files.items():
        # Once, and only once, whatever the interruption: no retry, no cancelled duplicate.
        assert [status for status, _audio, _total in log[batch_module.request_id(audio)]] == [200]
        text = audio.with_suffix(".txt").read_text()
        assert support.wer(support.SENTENCES[key_name], text) <= MAX_WER, text
    assert not list(folder.glob(".*.partial"))
