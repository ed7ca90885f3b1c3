"""The command's parts on their own: scoring, endpoint resolution, the command line. No server."""

from __future__ import annotations

import shutil

import pytest

from conftest import REPO, whisperlab
from whisperlab import endpoints, scoring
from whisperlab.endpoints import EndpointError


def test_case_punctuation_and_spacing_are_not_errors():
    assert scoring.wer("The quick brown fox.", "the  quick brown fox") == 0.0
    assert scoring.wer("one two three four", "one two tree four") == 0.25


def test_wer_is_undefined_without_reference_words():
    assert scoring.wer("", "") == 0.0
    assert scoring.wer("", "something") is None


def test_corpus_wer_weights_by_words():
    # one error in 2 words and none in 8: 1/10, not the mean of 0.5 and 0.
    pairs = [("a b", "a x"), ("c d e f g h i j", "c d e f g h i j")]
    assert scoring.corpus_wer(pairs) == pytest.approx(0.1)


def test_word_diff_marks_what_b_dropped_and_added():
    assert scoring.word_diff("Send the report by Friday.", "send a report by friday please") == (
        "send [-the-] {+a+} report by friday {+please+}"
    )
    assert scoring.word_diff("call me back soon", "call back soon") == "call [-me-] back soon"
    assert scoring.word_diff("", "stray words") == "{+stray+} {+words+}"


def test_percentiles_interpolate_between_ranks():
    values = [float(v) for v in range(1, 101)]
    assert scoring.percentile(values, 50) == pytest.approx(50.5)
    assert scoring.percentile(values, 99) == pytest.approx(99.01)
    assert scoring.percentile([], 99) is None
    assert scoring.percentile([3.0], 99) == 3.0


def test_per_label_options():
    assert endpoints.per_label(["wsl.home=/k", "/all"], "--key-file") == {"wsl.home": "/k", "*": "/all"}
    # A URL label holds ':' and '/': the last '=' splits.
    assert endpoints.per_label(["http://h:1/v1=/k"], "--key-file") == {"http://h:1/v1": "/k"}
    with pytest.raises(EndpointError):
        endpoints.per_label(["wsl.home="], "--key-file")


def test_openai_takes_the_sdk_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    found = endpoints.resolve("openai", endpoints.Options())
    assert (found.base_url, found.key, found.is_openai) == ("http://127.0.0.1:9/v1", "sk-from-env", True)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(EndpointError, match="OPENAI_API_KEY"):
        endpoints.resolve("openai", endpoints.Options())


def test_a_url_needs_the_api_base_and_takes_its_key_from_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv("WHISPERLAB_API_KEY", raising=False)
    with pytest.raises(EndpointError, match="/v1"):
        endpoints.resolve("http://127.0.0.1:8000", endpoints.Options())
    key = tmp_path / "key"
    key.write_text("sk-in-a-file\n")
    options = endpoints.Options(key_files={"http://127.0.0.1:8000/v1": str(key)})
    assert endpoints.resolve("http://127.0.0.1:8000/v1", options).key == "sk-in-a-file"
    assert endpoints.resolve("http://127.0.0.1:8001/v1", endpoints.Options()).key is None


def _inventory(tmp_path):
    """The example inventory with a second server and a key, in a folder of its own."""
    inventory = tmp_path / "home"
    shutil.copytree(REPO / "inventory" / "example", inventory)
    hosts = inventory / "hosts.yml"
    hosts.write_text(
        hosts.read_text().replace(
            "        # gpu-pc-2:\n        #   ansible_host: 192.168.1.51",
            "        gpu-pc-2:\n          ansible_host: 192.168.1.51",
        )
    )
    (inventory / ".secrets").mkdir()
    (inventory / ".secrets" / "whisper_api_key").write_text("sk-whisperlab-inventory-key")
    return hosts


def test_a_server_is_found_by_alias_short_name_or_host_name(tmp_path):
    options = endpoints.Options(inventory=str(_inventory(tmp_path)))
    first = endpoints.resolve("wsl.home", options)
    # The controller may not resolve the clients' alias: the address, which the certificate also holds.
    assert first.base_url == "https://192.168.1.50:8000/v1"
    assert first.key == "sk-whisperlab-inventory-key"
    assert first.ca_file.endswith("home/.secrets/tls/ca.crt")
    assert endpoints.resolve("wsl2", options).base_url == "https://192.168.1.51:8000/v1"
    assert endpoints.resolve("gpu-pc-2", options).base_url == "https://192.168.1.51:8000/v1"
    assert [s.label for s in endpoints.servers(options)] == ["wsl.home", "wsl2.home"]
    with pytest.raises(EndpointError, match="its servers: wsl.home, wsl2.home"):
        endpoints.resolve("wsl3.home", options)


def test_a_server_name_without_an_inventory_says_what_to_give(monkeypatch):
    monkeypatch.delenv("WHISPERLAB_INVENTORY", raising=False)
    with pytest.raises(EndpointError, match="--inventory"):
        endpoints.resolve("wsl.home", endpoints.Options())


def test_help_names_every_command():
    done = whisperlab("--help")
    assert done.returncode == 0
    for command in ("compare", "batch"):
        assert command in done.stdout


def test_a_key_cannot_be_given_on_the_command_line(tmp_path):
    done = whisperlab("compare", "openai", "http://127.0.0.1:9/v1", str(tmp_path), "--api-key", "sk-secret")
    assert done.returncode == 2
    assert "unrecognized arguments: --api-key" in done.stderr


def test_a_missing_key_is_a_usage_error_that_names_the_variable(tmp_path):
    done = whisperlab(
        "compare", "openai", "http://127.0.0.1:9/v1", str(tmp_path), env={"OPENAI_API_KEY": "", "PATH": "/usr/bin"}
    )
    assert done.returncode == 2
    assert "OPENAI_API_KEY" in done.stderr


def test_a_missing_input_is_a_usage_error_and_the_key_is_never_printed(tmp_path, standin):
    server = standin()
    key = tmp_path / "key"
    key.write_text("sk-never-printed")
    note = tmp_path / "missing.ogg"
    done = whisperlab("batch", str(note), "--server", server.url, "--key-file", str(key))
    assert done.returncode == 2
    assert f"no such file or folder: {note}" in done.stderr
    assert "sk-never-printed" not in done.stdout + done.stderr
    assert server.seen == []
