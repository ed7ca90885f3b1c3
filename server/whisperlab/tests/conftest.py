"""Fixtures for the whisperlab command's tests: a scripted OpenAI-shaped endpoint on loopback (the fast
tests), real whisper-server processes with real models (the `model` tests), and speech files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from whisperlab_testkit import support
from whisperlab_testkit.endpoint import StandIn, envelope  # noqa: F401  (envelope: for the tests)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def standin():
    started = []

    def start(**kwargs) -> StandIn:
        one = StandIn(**kwargs)
        started.append(one)
        return one

    yield start
    for one in started:
        one.close()


@pytest.fixture(scope="session")
def notes(tmp_path_factory) -> dict:
    """A spoken note per test sentence (Ogg Opus, as a voice message is), by the sentence's key."""
    folder = tmp_path_factory.mktemp("notes")
    made = {}
    for key, sentence in support.SENTENCES.items():
        made[key] = folder / f"{key}.ogg"
        made[key].write_bytes(support.encode(support.speak(sentence), "ogg"))
    return made


def whisperlab(*args: str, env: Optional[dict] = None, timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
    """The installed command, as a user runs it."""
    import os

    return subprocess.run(
        [sys.executable, "-m", "whisperlab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
