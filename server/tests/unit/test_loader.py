"""engine/loader.py: bad model paths fail fast, and CUDA failing at warm-up falls back to the CPU on auto.
No real model loads."""

from __future__ import annotations

import pytest

from whisper_server.config import Config
from whisper_server.engine import ModelLoadError, load_engine
from whisper_server.engine.device import CUDA_FIX, Probe


def probe(gpus=0, missing=(), types=()):
    return Probe(lambda: gpus, lambda lib: lib not in missing, lambda device: frozenset(types))


def test_bad_model_paths_fail_fast(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_engine(Config(model=str(tmp_path / "nope"), device="cpu"))
    with pytest.raises(ModelLoadError, match="has no model.bin"):
        load_engine(Config(model=str(tmp_path), device="cpu"))
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_engine(Config(model=str(tmp_path), device="cpu"))


def test_cuda_failing_at_warm_up_falls_back_to_cpu_on_auto(monkeypatch):
    """CTranslate2 opens cuBLAS lazily, so a broken CUDA setup can pass the probe and fail on the
    first decode; auto must still come up on the CPU, and cuda must refuse."""
    from whisper_server.engine import loader

    def fake_load(config, device, warnings, probe=None):
        if device == "cuda":
            raise ModelLoadError("Library libcublas.so.12 is not found or cannot be loaded: " + CUDA_FIX)
        return loader.LoadedEngine(object(), device, "int8", None, list(warnings))

    monkeypatch.setattr(loader, "_load_on", fake_load)
    loaded = load_engine(Config(model="x"), probe(1))
    assert loaded.device == "cpu"
    assert "libcublas.so.12" in loaded.warnings[0] and "Falling back to CPU" in loaded.warnings[0]
    with pytest.raises(ModelLoadError, match="libcublas"):
        load_engine(Config(model="x", device="cuda"), probe(1))
