"""Real human speech from ../shared/data (never committed). Skips cleanly where it is absent."""

from __future__ import annotations

import pytest

from whisperlab_testkit import support

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not support.SHARED_DATA.is_dir(), reason=f"{support.SHARED_DATA} is absent (local data only)"),
]


def sample(name: str) -> bytes:
    path = support.SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path.read_bytes()


def test_jfk(server):
    response = server.post(audio=sample("jfk.flac"), filename="jfk.flac")
    assert response.status_code == 200
    reference = (
        "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    )
    assert support.wer(reference, response.json()["text"]) <= 0.1


def test_prompt_teaches_a_product_name(server):
    audio = sample("hotwords.mp3")
    plain = server.post(audio=audio, filename="h.mp3").json()["text"]
    prompted = server.post(audio=audio, filename="h.mp3", data={"model": "whisper-1", "prompt": "ComfyUI"}).json()[
        "text"
    ]
    assert "comfyui" not in plain.lower()
    assert "comfyui" in prompted.lower()
