"""Admission: the bounded queue and its Retry-After, directly and through the app on a fake engine."""

from __future__ import annotations

import math
import threading
import time

import pytest

from conftest import FakeEngine, assert_envelope, make_app, post
from whisper_server.admission import Admission, QueueFull
from whisper_server.state import get_state


def test_admission_bounds():
    admission = Admission(workers=2, max_queue=1)
    with admission.ticket(), admission.ticket(), admission.ticket():
        assert admission.waiting == 3 and admission.running == 0
        with pytest.raises(QueueFull) as full:
            with admission.ticket():
                pass
        assert full.value.retry_after >= 1
    assert admission.waiting == 0
    with admission.ticket() as ticket:
        with ticket.run():
            assert admission.running == 1 and admission.waiting == 0
    assert admission.running == 0


def test_retry_after_is_when_one_place_frees_not_when_the_queue_drains():
    admission = Admission(workers=1, max_queue=3)
    for _ in range(5):  # recent runs took 10 s each
        admission.release(admission.acquire(lambda: None), seconds=10.0)
    mean = admission._mean_seconds
    with admission.ticket() as running, running.run():
        with admission.ticket(), admission.ticket(), admission.ticket():
            with pytest.raises(QueueFull) as full:
                with admission.ticket():
                    pass
    # Four admitted at ~mean seconds each would drain in ~4 x mean; one place frees in ~mean.
    assert 1 <= full.value.retry_after <= math.ceil(mean)
    assert admission.running == 0 and admission.waiting == 0


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_full_queue_answers_429_with_retry_after(wav_bytes):
    gate = threading.Event()
    app = make_app(FakeEngine(gate=gate), workers=1, max_queue=1)
    admission = get_state(app).admission
    results = []

    def call():
        results.append(post(app.test_client(), wav_bytes).status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: admission.running == 1 and admission.waiting == 1)
    assert app.test_client().get("/health").get_json()["queue_depth"] == 1
    refused = post(app.test_client(), wav_bytes)
    error = assert_envelope(refused, 429, code="queue_full")
    assert error["type"] == "rate_limit_error"
    assert int(refused.headers["Retry-After"]) >= 1
    gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [200, 200]
    assert admission.running == 0 and admission.waiting == 0
    # The slot is free again.
    assert post(app.test_client(), wav_bytes).status_code == 200


def test_bad_audio_gives_its_ticket_back(wav_bytes):
    app = make_app(workers=1, max_queue=0)
    client = app.test_client()
    for _ in range(3):
        assert post(client, b"garbage" * 10).status_code == 400
    assert post(client, wav_bytes).status_code == 200
