"""compare and batch as a user runs them, against scripted endpoints on loopback: gates, errors, 429s,
failover, resuming, and inputs left as they were. (test_real.py does the same against real servers.)"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import envelope, whisperlab
from whisperlab import batch as batch_module
from whisperlab_testkit import support

TEXTS_A = {
    "fox.ogg": "The quick brown fox jumps over the lazy dog.",
    "report.ogg": "Please send the quarterly report to the finance team by Friday afternoon.",
    "weather.ogg": "Tomorrow the weather will be sunny with a light breeze from the west.",
}
# B gets two words of the report wrong and the rest right.
TEXTS_B = {**TEXTS_A, "report.ogg": "Please send the quarterly report to the fine ants team by Friday afternoon."}


def _digests(folder: Path) -> dict:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture
def folder(tmp_path, notes):
    """The three notes and a file that is not audio, in a folder of their own."""
    made = tmp_path / "notes"
    made.mkdir()
    for path in notes.values():
        (made / path.name).write_bytes(path.read_bytes())
    (made / "broken.ogg").write_bytes(b"not audio " * 200)
    return made


def test_compare_reports_wer_diff_latency_and_cost(tmp_path, folder, standin):
    a, b = standin(texts=TEXTS_A), standin(texts=TEXTS_B)
    out = tmp_path / "report"
    done = whisperlab("compare", a.url, b.url, str(folder), "--out", str(out), "--minutes-per-month", "600")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    by_name = {Path(f["file"]).name: f for f in report["files"]}
    assert set(by_name) == set(TEXTS_A)  # the broken file was not sent
    assert "broken.ogg" in done.stderr
    assert by_name["report.ogg"]["wer"] == pytest.approx(2 / 12)  # "finance" -> "fine ants": 1 sub + 1 insert
    assert "[-finance-]" in by_name["report.ogg"]["diff"] and "{+fine ants+}" in by_name["report.ogg"]["diff"]
    assert by_name["fox.ogg"]["wer"] == 0.0 and by_name["fox.ogg"]["diff"] == ""
    assert report["wer"] == pytest.approx(2 / (9 + 12 + 13))
    seconds = sum(f["seconds"] for f in report["files"])
    assert report["audio_minutes"] == pytest.approx(seconds / 60)
    assert report["cost"]["this_volume_usd"] == pytest.approx(round(seconds / 60 * 0.006, 4))
    assert report["cost"]["per_month_usd"] == pytest.approx(3.6)
    for side in ("a", "b"):
        assert report[side]["requests"] == 3 and report[side]["error_rate"] == 0
        assert report[side]["latency_s"]["p50"] <= report[side]["latency_s"]["p99"]
    # Each request carried the id the report gives it, with the key it was meant to.
    assert sorted(s.request_id for s in a.seen) == sorted(f["a"]["request_id"] for f in report["files"])
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "report.md").read_text()
    assert "![latency and WER](report.png)" in markdown and "fine ants" in markdown
    assert "WER of B against A" in done.stdout


def test_compare_gates_on_wer_and_p99(folder, standin):
    a, b = standin(texts=TEXTS_A), standin(texts=TEXTS_B, delay=0.3)
    passing = whisperlab("compare", a.url, b.url, str(folder), "--fail-above", "0.1", "--p99-above", "30")
    assert passing.returncode == 0, passing.stderr
    too_wrong = whisperlab("compare", a.url, b.url, str(folder), "--fail-above", "0.05")
    assert too_wrong.returncode == 1 and "gate: WER 0.059 is above 0.05" in too_wrong.stderr
    too_slow = whisperlab("compare", a.url, b.url, str(folder), "--p99-above", "0.2")
    assert too_slow.returncode == 1 and "p99 latency" in too_slow.stderr


def test_compare_counts_errors_and_honours_retry_after(tmp_path, folder, standin):
    tries: dict = {}

    def busy_then_fine(seen):
        tries[seen.filename] = tries.get(seen.filename, 0) + 1
        if seen.filename == "fox.ogg" and tries[seen.filename] == 1:
            return 429, {"Retry-After": "1", "Content-Type": "application/json"}, envelope(429, "busy")[2]
        if seen.filename == "weather.ogg":
            return envelope(400, "The audio could not be decoded.")
        return 200, {"Content-Type": "application/json"}, json.dumps({"text": TEXTS_A[seen.filename]})

    a, b = standin(texts=TEXTS_A), standin(answer=busy_then_fine)
    out = tmp_path / "report"
    done = whisperlab("compare", a.url, b.url, str(folder), "--out", str(out), "--fail-above", "0.5")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    files = {Path(f["file"]).name: f for f in report["files"]}
    assert files["fox.ogg"]["b"]["ok"] and files["fox.ogg"]["b"]["retries"] == 1
    assert files["fox.ogg"]["b"]["latency_s"] >= 1.0  # it waited as told
    assert files["weather.ogg"]["b"]["error"] == "HTTP 400: The audio could not be decoded."
    assert report["b"]["errors"] == 1 and report["b"]["error_rate"] == pytest.approx(1 / 3)
    assert report["compared"] == 2  # a file only one side transcribed is not in the WER


def _batch(*args, env=None):
    return whisperlab("batch", "--no-progress", *args, env=env)


def test_batch_writes_each_format_beside_the_audio_and_never_touches_it(folder, standin):
    server = standin(texts=TEXTS_A)
    before = _digests(folder)
    done = _batch(str(folder), "--server", server.url, "--format", "srt")
    assert done.returncode == 1  # the broken file failed; the rest did not
    assert "failed: " in done.stdout and "broken.ogg" in done.stdout
    assert "files: 4 (3 transcribed, 0 already done, 1 failed)" in done.stdout
    for name in TEXTS_A:
        assert (folder / name).with_suffix(".srt").read_text() == TEXTS_A[name] + "\n"
    assert {s.fields["response_format"] for s in server.seen} == {"srt"}
    after = _digests(folder)
    assert {name: after[name] for name in before} == before
    assert not [p for p in folder.iterdir() if p.name.endswith(".partial")]


def test_batch_resumes_and_keeps_the_tree_under_out(tmp_path, folder, standin):
    server = standin(texts=TEXTS_A)
    (folder / "old").mkdir()
    (folder / "old" / "fox.ogg").write_bytes((folder / "fox.ogg").read_bytes())
    (folder / "broken.ogg").unlink()
    out = tmp_path / "texts"
    done = _batch(str(folder), "--server", server.url, "--out", str(out), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((out / "old" / "fox.json").read_text())["text"] == TEXTS_A["fox.ogg"]
    assert len(server.seen) == 4
    again = _batch(str(folder), "--server", server.url, "--out", str(out), "--format", "json")
    assert again.returncode == 0
    assert "(0 transcribed, 4 already done, 0 failed)" in again.stdout
    assert len(server.seen) == 4


def test_batch_fails_over_and_waits_as_429_says(folder, standin):
    (folder / "broken.ogg").unlink()
    dead = f"http://127.0.0.1:{support.free_port()}/v1"
    busy_once: dict = {}

    def busy(seen):
        busy_once[seen.filename] = busy_once.get(seen.filename, 0) + 1
        if busy_once[seen.filename] == 1:
            return 503, {"Retry-After": "1", "Content-Type": "application/json"}, envelope(503, "warming up")[2]
        return 200, {"Content-Type": "text/plain"}, TEXTS_A[seen.filename]

    server = standin(answer=busy)
    began = time.monotonic()
    done = _batch(str(folder), "--server", dead, "--server", server.url, "--summary-json", str(folder / "s.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - began >= 1.0
    summary = json.loads((folder / "s.json").read_text())
    assert summary["by_server"] == {server.url: 3}
    # The unreachable server was tried for the first file, then set aside rather than waited on per file.
    tried_dead = [o for o in summary["outcomes"] if o["attempts"][0]["server"] == dead]
    assert 1 <= len(tried_dead) <= 2  # two files may start together before the first learns
    assert all(count == 2 for count in busy_once.values())


def test_batch_reports_a_file_the_server_refuses_and_goes_on(folder, standin):
    def refuse_weather(seen):
        if seen.filename == "weather.ogg":
            return envelope(400, "The audio could not be decoded.")
        return 200, {"Content-Type": "text/plain"}, TEXTS_A.get(seen.filename, "")

    first, second = standin(answer=refuse_weather), standin(texts=TEXTS_A)
    done = _batch(str(folder), "--server", first.url, "--server", second.url)
    assert done.returncode == 1
    assert "weather.ogg: " in done.stdout and "HTTP 400: The audio could not be decoded." in done.stdout
    assert not (folder / "weather.txt").exists()
    # A refused file is the file's fault: no other server is asked.
    assert second.seen == []
    assert (folder / "fox.txt").read_text().strip() == TEXTS_A["fox.ogg"]


def test_two_inputs_with_one_transcript_name_are_not_both_written(tmp_path, notes, standin):
    server = standin()
    (tmp_path / "a.ogg").write_bytes(notes["fox"].read_bytes())
    (tmp_path / "a.wav").write_bytes(support.speech("fox", "wav"))
    done = _batch(str(tmp_path), "--server", server.url)
    assert done.returncode == 1
    assert "its transcript" in done.stdout and "a.txt" in done.stdout
    assert len(server.seen) == 1


def test_a_stale_partial_is_removed_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "note.txt"
    stale = tmp_path / ".note.txt.999.1.partial"
    stale.write_text("half")
    batch_module.remove_stale_partials(target)
    assert not stale.exists()

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        batch_module.write_whole(target, "a transcript")
    assert list(tmp_path.iterdir()) == []


def test_batch_interrupted_finishes_what_is_in_flight_then_resumes(tmp_path, notes, standin):
    """Ctrl-C: the file in flight is saved whole, nothing new starts, exit 130; the next run does the
    rest. Every file reaches the server exactly once."""
    for i in range(6):
        (tmp_path / f"n{i}.ogg").write_bytes(notes["fox"].read_bytes())
    server = standin(texts={}, delay=0.8)
    command = [sys.executable, "-m", "whisperlab", "batch", "--no-progress", str(tmp_path), "--server", server.url]
    command += ["--concurrency", "1"]
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "n1.txt").exists():
        assert time.monotonic() < deadline and running.poll() is None, running.communicate()
        time.sleep(0.05)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 130, out + err
    assert "left for the next run" in out and "stopping:" in err
    written = sorted(p.name for p in tmp_path.glob("*.txt"))
    assert 2 <= len(written) < 6
    assert all(p.read_text() == "hello world\n" for p in tmp_path.glob("*.txt"))
    assert not list(tmp_path.glob(".*.partial"))
    resumed = _batch(str(tmp_path), "--server", server.url)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"({6 - len(written)} transcribed, {len(written)} already done, 0 failed)" in resumed.stdout
    assert sorted(s.filename for s in server.seen) == [f"n{i}.ogg" for i in range(6)]


def _job(spool: Path, note: Path, name: str, local_text: str, url: str = "http://wsl.home:8000/v1") -> Path:
    """A copied note as the skill override leaves it for `whisperlab shadow send`."""
    job = spool / f"job.{name}"
    job.mkdir(parents=True)
    (job / "audio.ogg").write_bytes(note.read_bytes())
    for field, value in {"local": local_text, "url": url, "seconds": "0.84", "model": "gpt-4o-transcribe"}.items():
        (job / field).write_text(value)
    (job / "name").write_text(name)
    return job


def test_shadow_send_logs_the_pair_then_compare_reads_the_log(tmp_path, notes, standin):
    cloud = standin(texts={"fox.ogg": TEXTS_A["fox.ogg"], "report.ogg": TEXTS_A["report.ogg"]})
    key = tmp_path / "cloud-key"
    key.write_text("sk-cloud")
    folder = tmp_path / "shadow"
    config = tmp_path / "client.env"
    config.write_text(f"WHISPER_SHADOW_URL={cloud.url}\nWHISPER_SHADOW_KEY_FILE={key}\nWHISPER_SHADOW_DIR={folder}\n")
    local = {"fox.ogg": TEXTS_A["fox.ogg"], "report.ogg": TEXTS_B["report.ogg"]}
    for name, text in local.items():
        job = _job(folder / "spool", notes[Path(name).stem], name, text)
        done = whisperlab("shadow", "send", "--config", str(config), str(job))
        assert done.returncode == 0, done.stderr
        assert not job.exists()
    # The second endpoint unreachable: still a record, saying why; the copy still removed.
    dead = tmp_path / "dead.env"
    dead.write_text(f"WHISPER_SHADOW_URL=http://127.0.0.1:{support.free_port()}/v1\nWHISPER_SHADOW_DIR={folder}\n")
    job = _job(folder / "spool", notes["weather"], "weather.ogg", TEXTS_A["weather.ogg"])
    assert whisperlab("shadow", "send", "--config", str(dead), str(job)).returncode == 1
    assert not job.exists()

    log = folder / "shadow.jsonl"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["name"] for r in records] == ["fox.ogg", "report.ogg", "weather.ogg"]
    assert records[2]["shadow"]["ok"] is False and "cannot connect" in records[2]["shadow"]["error"]
    assert {s.authorization for s in cloud.seen} == {"Bearer sk-cloud"}
    assert {s.fields["model"] for s in cloud.seen} == {"gpt-4o-transcribe"}

    out = tmp_path / "report"
    done = whisperlab("compare", "--from-shadow-log", str(log), "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["compared"] == 2 and report["wer"] == pytest.approx(2 / (9 + 12))
    assert report["a"]["url"] == cloud.url and report["a"]["error_rate"] == pytest.approx(1 / 3)
    assert report["b"]["latency_s"]["p50"] == pytest.approx(0.84)
    assert "{+fine ants+}" in (out / "report.md").read_text()


def test_compare_from_a_log_that_is_not_one_is_a_usage_error(tmp_path):
    log = tmp_path / "shadow.jsonl"
    log.write_text("not json\n")
    done = whisperlab("compare", "--from-shadow-log", str(log))
    assert done.returncode == 2 and "shadow.jsonl:1: not a shadow record" in done.stderr


def _shadow_log(path: Path, count: int, local_text=None, local_ok=None, local_latency=None) -> Path:
    """A shadow log of `count` notes; the local side's text, success and latency per note as given."""
    lines = []
    for i in range(count):
        truth = TEXTS_A["report.ogg"]
        lines.append(
            json.dumps(
                {
                    "time": f"2026-11-30T10:{i:02d}:00+00:00",
                    "name": f"note-{i}.ogg",
                    "seconds": 5.0,
                    "local": {
                        "url": "https://wsl.home:8000/v1",
                        "model": "gpt-4o-transcribe",
                        "text": local_text(i) if local_text else truth,
                        "latency_s": local_latency(i) if local_latency else 1.0,
                        "ok": local_ok(i) if local_ok else True,
                    },
                    "shadow": {
                        "url": "https://api.openai.com/v1",
                        "model": "gpt-4o-transcribe",
                        "ok": True,
                        "text": truth,
                        "latency_s": 2.0,
                        "error": "",
                    },
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "log, status, says",
    [
        ({"count": 20}, 0, "wsl.home:8000 meets every threshold"),
        ({"count": 5}, 3, "LOW  evidence: 5 notes both answered (at least 20)"),
        ({"count": 24, "local_ok": lambda i: i % 8 != 3}, 1, "FAIL error rate: 12.5% of 24 notes (at most 1.0%)"),
        ({"count": 20, "local_latency": lambda i: 30.0 if i == 0 else 1.0}, 1, "FAIL p99 latency: 24.49 s"),
        ({"count": 20, "local_text": lambda i: "something else entirely"}, 1, "FAIL WER against"),
    ],
    ids=["meets", "too-few", "errors", "slow", "wrong"],
)
def test_canary_says_whether_the_local_server_meets_the_bar(tmp_path, log, status, says):
    path = _shadow_log(tmp_path / "shadow.jsonl", **log)
    done = whisperlab("canary", "--from-shadow-log", str(path))
    assert done.returncode == status, done.stdout + done.stderr
    assert says in done.stdout


def test_canary_applies_nothing_on_too_little_evidence(tmp_path):
    path = _shadow_log(tmp_path / "shadow.jsonl", count=5)
    done = whisperlab("canary", "--from-shadow-log", str(path), "--apply", "--inventory", "/nonexistent/hosts.yml")
    assert done.returncode == 3 and "nothing changes" in done.stdout
    assert "putting the local servers" not in done.stdout


def test_canary_reads_a_compare_report(tmp_path, folder, standin):
    a, b = standin(texts=TEXTS_A), standin(texts=TEXTS_B)
    out = tmp_path / "report"
    assert whisperlab("compare", a.url, b.url, str(folder), "--out", str(out)).returncode == 0
    report = out / "report.json"
    strict = whisperlab("canary", "--report", str(report), "--min-notes", "3", "--max-wer", "0.05")
    assert strict.returncode == 1 and "FAIL WER against" in strict.stdout
    lenient = whisperlab("canary", "--report", str(report), "--min-notes", "3", "--max-wer", "0.1")
    assert lenient.returncode == 0, lenient.stdout
    broken = tmp_path / "not-a-report.json"
    broken.write_text("{}")
    assert whisperlab("canary", "--report", str(broken)).returncode == 2


def test_canary_apply_needs_the_clients_inventory(tmp_path, monkeypatch):
    monkeypatch.delenv("WHISPERLAB_INVENTORY", raising=False)
    path = _shadow_log(tmp_path / "shadow.jsonl", count=20)
    done = whisperlab("canary", "--from-shadow-log", str(path), "--apply", env={"WHISPERLAB_INVENTORY": ""})
    assert done.returncode == 2 and "--apply needs the clients' inventory" in done.stderr
