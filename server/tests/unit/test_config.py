"""Settings from flags, the environment and key files, and what they refuse: no listening beyond this
machine without a key, and a malformed Host allowlist. No model needed."""

from __future__ import annotations

import os

import pytest

import whisper_server.config as config_module
from whisper_server.config import OPENAI_MODEL_NAMES, Config, ConfigError, load_config

# Without a key the server listens on loopback only (the last tests here); the others are about the rest.
LOCAL = {"WHISPER_HOST": "127.0.0.1"}


KEY = "sk-whisperlab-test-0123456789abcdef"


def test_defaults():
    config = load_config(["--model", "small"], environ={"WHISPER_API_KEY": "sk-k"})
    assert (config.host, config.port, config.device, config.compute_type) == ("127.0.0.1", 8000, "auto", "auto")
    assert (config.max_queue, config.max_upload_mb, config.vad, config.batch_size) == (8, 25.0, True, 0)
    assert config.model_aliases == OPENAI_MODEL_NAMES
    assert "gpt-4o-transcribe" in config.model_aliases
    assert config.api_key == "sk-k" and config.allowed_hosts == ()
    assert config.max_upload_bytes == 25 * 1024 * 1024


@pytest.mark.parametrize(
    "cores, workers, cuda_workers, threads", [(1, 2, 4, 1), (2, 2, 4, 2), (4, 4, 8, 4), (8, 8, 16, 8), (64, 16, 16, 8)]
)
def test_workers_and_threads_come_from_the_usable_cores(monkeypatch, cores, workers, cuda_workers, threads):
    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert Config(model="x", device="cuda").workers == cuda_workers
    assert load_config(["--model", "small", "--device", "cuda"], environ=LOCAL).workers == cuda_workers
    monkeypatch.setattr(config_module, "_cuda_present", lambda: True)  # --device auto on a GPU box
    assert load_config(["--model", "small"], environ=LOCAL).workers == cuda_workers
    assert load_config(["--model", "small", "--device", "cpu"], environ=LOCAL).workers == workers
    monkeypatch.setattr(config_module, "_cuda_present", lambda: False)
    config = load_config(["--model", "small"], environ=LOCAL)
    assert (config.workers, config.cpu_threads) == (workers, threads)
    assert (Config(model="x").workers, Config(model="x").cpu_threads) == (workers, threads)
    spelled = load_config(["--model", "small", "--workers", "auto"], environ={**LOCAL, "WHISPER_CPU_THREADS": "auto"})
    assert (spelled.workers, spelled.cpu_threads) == (workers, threads)
    assert (
        load_config(["--model", "small", "--workers", "3"], environ={**LOCAL, "WHISPER_CPU_THREADS": "1"}).workers == 3
    )


def test_environment_then_flags():
    env = {
        "WHISPER_MODEL": "base",
        "WHISPER_PORT": "9000",
        "WHISPER_WORKERS": "2",
        "WHISPER_VAD": "false",
        "WHISPER_MODEL_NAMES": "whisper-1, gpt-4o-transcribe",
        "WHISPER_MODEL_ALIAS": "gpt-4o-transcribe, whisper-1,local",
        "WHISPER_BATCH_SIZE": "8",
        **LOCAL,
    }
    config = load_config([], environ=env)
    assert (config.model, config.port, config.workers, config.vad, config.batch_size) == ("base", 9000, 2, False, 8)
    assert config.model_aliases == ("whisper-1", "gpt-4o-transcribe", "local")
    flagged = load_config(["--port", "9100", "--vad"], environ=env)
    assert flagged.port == 9100 and flagged.vad is True
    narrowed = load_config(["--model-names", "whisper-1"], environ={"WHISPER_MODEL": "base", **LOCAL})
    assert narrowed.model_aliases == ("whisper-1",)


@pytest.mark.parametrize(
    "argv, env, fragment",
    [
        ([], {}, "--model / WHISPER_MODEL is required"),
        (["--model", "x", "--device", "tpu"], {}, "--device must be one of"),
        (["--model", "x", "--workers", "0"], {}, "--workers must be at least 1"),
        (["--model", "x", "--workers", "-1"], {}, "--workers must be at least 1"),
        (["--model", "x", "--port", "70000"], {}, "--port"),
        (["--model", "x"], {"WHISPER_PORT": "eighty"}, "WHISPER_PORT"),
        (["--model", "x", "--max-upload-mb", "0"], {}, "--max-upload-mb"),
        (["--model", "x"], {"WHISPER_VAD": "perhaps"}, "WHISPER_VAD"),
        (["--model", "x", "--model-names", " , "], {}, "--model-names"),
    ],
)
def test_invalid_settings_are_named(argv, env, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("-", "\\-").replace("/", "\\/")):
        load_config(argv, environ=env)


def test_api_key_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("  sk-local-123\n")
    config = load_config(["--model", "x", "--api-key-file", str(key_file)], environ={})
    assert config.api_key == "sk-local-123"
    assert "sk-local-123" not in repr(config)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(["--model", "x", "--api-key-file", str(tmp_path / "missing")], environ={})
    key_file.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(["--model", "x", "--api-key-file", str(key_file)], environ={})


def test_api_key_from_the_environment_file(tmp_path):
    config = load_config(["--model", "x"], environ={"WHISPER_API_KEY": " sk-env-456\n"})
    assert config.api_key == "sk-env-456"
    assert "sk-env-456" not in repr(config)
    key_file = tmp_path / "key"
    key_file.write_text("from-file")
    both = load_config(["--model", "x", "--api-key-file", str(key_file)], environ={"WHISPER_API_KEY": "env"})
    assert both.api_key == "from-file"


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.168.1.50", "wsl.home"])
@pytest.mark.parametrize("environ", [{}, {"WHISPER_API_KEY": ""}, {"WHISPER_API_KEY": " \t\n"}])
def test_listening_beyond_loopback_without_a_key_is_refused(host, environ):
    with pytest.raises(ConfigError, match="no API key") as refused:
        load_config(["--model", "x", "--host", host], environ=environ)
    message = str(refused.value)
    assert "--api-key-file" in message and "127.0.0.1" in message
    if "WHISPER_API_KEY" in environ:
        assert "WHISPER_API_KEY is set but empty" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost", "LocalHost"])
def test_loopback_without_a_key_is_allowed(host):
    config = load_config(["--model", "x", "--host", host], environ={"WHISPER_API_KEY": " "})
    assert config.api_key is None


def test_a_key_lets_the_server_listen_anywhere(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    from_file = load_config(["--model", "x", "--host", "0.0.0.0", "--api-key-file", str(key_file)], environ={})
    from_env = load_config(["--model", "x"], environ={"WHISPER_HOST": "192.168.1.50", "WHISPER_API_KEY": KEY})
    assert from_file.api_key == from_env.api_key == KEY
    assert (from_file.host, from_env.host) == ("0.0.0.0", "192.168.1.50")


def test_a_bare_start_listens_on_loopback_only():
    # Like whisper.cpp's server: with no --host, nothing beyond this machine can reach it, and no key is needed.
    config = load_config(["--model", "x"], environ={})
    assert config.host == "127.0.0.1" and config.api_key is None


def test_a_key_given_in_the_environment_leaves_it(monkeypatch):
    """Children (nvidia-smi, ctranslate2's helpers) inherit os.environ: the key must not be there."""
    monkeypatch.setenv("WHISPER_API_KEY", KEY)
    config = load_config(["--model", "x"])
    assert config.api_key == KEY
    assert "WHISPER_API_KEY" not in os.environ
    # Even when a key file wins over it.
    monkeypatch.setenv("WHISPER_API_KEY", "other")
    monkeypatch.setenv("WHISPER_HOST", "127.0.0.1")
    load_config(["--model", "x"])
    assert "WHISPER_API_KEY" not in os.environ


def test_allowed_hosts_are_names_without_ports_in_lower_case():
    config = load_config(
        ["--model", "x", "--host", "127.0.0.1"],
        environ={"WHISPER_ALLOWED_HOSTS": " WSL.home:8000, wsl ,[::1]:8000,192.168.1.50, 0:0:0:0:0:0:0:1,localhost., "},
    )
    assert config.allowed_hosts == ("wsl.home", "wsl", "::1", "192.168.1.50", "localhost")
    assert load_config(["--model", "x", "--host", "::1"], environ={}).allowed_hosts == ()
    flag = load_config(["--model", "x", "--host", "::1", "--allowed-hosts", "a.b"], environ={})
    assert flag.allowed_hosts == ("a.b",)


@pytest.mark.parametrize("value", ["wsl home", "evil/x", "a@b", "[::1"])
def test_a_malformed_allowed_host_is_named(value):
    with pytest.raises(ConfigError, match="--allowed-hosts / WHISPER_ALLOWED_HOSTS"):
        load_config(["--model", "x", "--host", "127.0.0.1", "--allowed-hosts", value], environ={})
