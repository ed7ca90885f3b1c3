"""The Batcher: model calls of concurrent requests decoded together, each caller getting its own.

A stand-in for CTranslate2's Whisper (conftest.Inner) records every call; its "encoder" keeps each
window's first feature values, so a result can be traced back to the window it came from. No real
model here: integration/test_batching_and_lifecycle.py runs the real one.
"""

from __future__ import annotations

import threading

import ctranslate2
import numpy as np
import pytest

from conftest import Inner
from whisper_server.engine.batcher import Batcher, Deferred

SOT = 50258


def window(value: float, count: int = 1) -> ctranslate2.StorageView:
    return ctranslate2.StorageView.from_array(np.full((count, 2, 4), value, dtype=np.float32))


def prompt(*middle: int) -> list[int]:
    return [SOT, *middle, 50359]


def call_in_thread(model: Batcher, value: float, results: dict, *, count: int = 1, p=None, **kwargs):
    def run():
        try:
            results[value] = model.generate(model.encode(window(value, count)), [p or prompt()] * count, **kwargs)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            results[value] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_queued(model: Batcher, count: int) -> None:
    for _ in range(1000):
        if len(model._queue) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} calls never queued")


def behind_a_held_call(model: Batcher, inner: Inner, results: dict, later, **first) -> None:
    """Call 1.0 (with `first`'s settings) and hold it in the model on inner's gate; queue the `later`
    calls, (value, settings), behind it one by one, in that order; then open the gate and let all end."""
    threads = [call_in_thread(model, 1.0, results, **first)]
    assert inner.started.wait(10)
    for n, (value, settings) in enumerate(later, start=1):
        threads.append(call_in_thread(model, value, results, **settings))
        wait_queued(model, n)
    inner.gate.set()
    for thread in threads:
        thread.join(10)


def test_a_lone_call_runs_at_once_and_gets_its_results():
    inner = Inner()
    model = Batcher(inner, max_windows=8, sot=SOT)
    assert model.generate(model.encode(window(7.0)), [prompt()], beam_size=5) == [(7.0, tuple(prompt()))]
    assert inner.encoded == [1] and inner.generated == [(1, {"beam_size": 5})]
    assert model.calls_by_windows == {1: 1}


def test_calls_that_queue_while_the_model_is_busy_are_decoded_together():
    inner = Inner(threading.Event())
    model = Batcher(inner, max_windows=8, sot=SOT)
    results: dict = {}
    later = [(v, dict(beam_size=5, p=prompt(10 + int(v)))) for v in (2.0, 3.0)]
    later.append((4.0, dict(count=2, beam_size=5, p=prompt(14))))  # a long one's chunks
    behind_a_held_call(model, inner, results, later, beam_size=5)
    assert [w for w, _ in inner.generated] == [1, 4]  # the three queued calls in one decoder call
    assert inner.encoded == [1] * 5  # on a CPU the encoder takes one window at a time
    assert results[1.0] == [(1.0, tuple(prompt()))]
    assert results[2.0] == [(2.0, tuple(prompt(12)))] and results[3.0] == [(3.0, tuple(prompt(13)))]
    assert results[4.0] == [(4.0, tuple(prompt(14)))] * 2
    assert model.calls_by_windows == {1: 1, 4: 1}


def test_on_a_gpu_the_whole_batch_goes_to_the_model_at_once():
    """generate() takes the features and encodes the batch itself: one call for the lot."""
    inner = Inner(threading.Event())
    inner.device = "cuda"
    model = Batcher(inner, max_windows=8, sot=SOT)
    results: dict = {}
    behind_a_held_call(model, inner, results, [(v, dict(count=2)) for v in (2.0, 3.0)])
    assert inner.encoded == [] and [w for w, _ in inner.generated] == [1, 4]
    assert results[3.0] == [(3.0, tuple(prompt()))] * 2
    deferred = model.encode(window(4.0))
    model.generate(deferred, [prompt()])
    model.align(deferred, [SOT], [[1]], 1500)  # no CPU copy of the output kept: encoded for alignment
    assert inner.encoded == [1]


def test_calls_that_arrive_while_the_batch_is_encoded_join_it():
    """On a CPU windows are encoded one by one; whatever arrives meanwhile joins the decoder call."""

    class SlowEncoder(Inner):
        def encode(self, features, to_cpu=False):
            if not self.encoded:  # the first window: let two more calls queue behind it
                self.encoding.set()
                assert self.queued.wait(10)
            return super().encode(features, to_cpu)

    inner = SlowEncoder()
    inner.encoding, inner.queued = threading.Event(), threading.Event()
    model = Batcher(inner, max_windows=8, sot=SOT)
    results: dict = {}
    threads = [call_in_thread(model, 1.0, results)]
    assert inner.encoding.wait(10)
    threads += [call_in_thread(model, v, results) for v in (2.0, 3.0)]
    wait_queued(model, 2)
    inner.queued.set()
    for thread in threads:
        thread.join(10)
    assert [w for w, _ in inner.generated] == [3] and inner.encoded == [1, 1, 1]
    assert all(results[v] == [(v, tuple(prompt()))] for v in (1.0, 2.0, 3.0))


def test_only_calls_that_can_share_a_model_call_are_batched():
    """CTranslate2 takes one set of decoding settings per call, and prompts of one layout."""
    inner = Inner(threading.Event())
    model = Batcher(inner, max_windows=8, sot=SOT)
    results: dict = {}
    later = [
        (2.0, dict(beam_size=5)),
        (3.0, dict(beam_size=1, sampling_temperature=0.4)),  # a fallback
        (4.0, dict(beam_size=5, p=[50361, 400, 401, *prompt()])),  # a prompt
        (5.0, dict(beam_size=5)),
    ]
    behind_a_held_call(model, inner, results, later, beam_size=5)
    decoded = [(w, kwargs.get("beam_size")) for w, kwargs in inner.generated]
    assert decoded == [(1, 5), (2, 5), (1, 1), (1, 5)]  # 2 and 5 together, oldest first
    assert all(results[v][0][0] == v for v in (1.0, 2.0, 3.0, 4.0, 5.0))


def test_a_batch_holds_at_most_max_windows():
    inner = Inner(threading.Event())
    model = Batcher(inner, max_windows=3, sot=SOT)
    results: dict = {}
    behind_a_held_call(model, inner, results, [(v, {}) for v in (2.0, 3.0, 4.0, 5.0, 6.0)])
    assert [w for w, _ in inner.generated] == [1, 3, 2]
    assert all(results[v][0][0] == v for v in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0))


def test_a_caller_that_gives_up_while_queued_is_never_decoded():
    from whisper_server.engine.batcher import _current

    gate = threading.Event()
    inner = Inner(gate)
    model = Batcher(inner, max_windows=8, sot=SOT)
    results: dict = {}
    first = call_in_thread(model, 1.0, results)
    assert inner.started.wait(10)
    gone = threading.Event()

    def leaving():
        def check():
            if gone.is_set():
                raise ConnectionAbortedError("client left")

        _current.check = check
        try:
            model.generate(model.encode(window(2.0)), [prompt()])
        except ConnectionAbortedError as exc:
            results[2.0] = exc

    thread = threading.Thread(target=leaving)
    thread.start()
    wait_queued(model, 1)
    gone.set()
    thread.join(10)
    assert isinstance(results[2.0], ConnectionAbortedError) and model._queue == []
    gate.set()
    first.join(10)
    assert [w for w, _ in inner.generated] == [1]


def test_a_window_that_breaks_the_batch_fails_alone():
    inner = Inner(threading.Event(), fail_on=3.0)
    model = Batcher(inner, max_windows=8, sot=SOT)
    results: dict = {}
    behind_a_held_call(model, inner, results, [(2.0, {}), (3.0, {})])
    assert isinstance(results[3.0], ValueError) and "breaks the model" in str(results[3.0])
    assert results[2.0] == [(2.0, tuple(prompt()))]  # retried on its own
    assert model.generate(model.encode(window(4.0)), [prompt()]) == [(4.0, tuple(prompt()))]  # still serving


def test_word_alignment_reuses_the_batch_encoder_output_on_cpu():
    inner = Inner()
    model = Batcher(inner, max_windows=8, sot=SOT)
    deferred = model.encode(window(5.0))
    assert isinstance(deferred, Deferred)
    model.generate(deferred, [prompt()])
    assert model.align(deferred, [SOT], [[1, 2]], 1500) == "aligned"
    assert inner.encoded == [1]  # no second encode
    assert inner.aligned[0].shape == (1, 1, 3) and inner.aligned[0][0, 0, 0] == 5.0
    fresh = model.encode(window(6.0))  # not decoded yet (language detection): encoded on demand
    model.align(fresh, [SOT], [[1]], 1500)
    assert inner.encoded == [1, 1] and inner.aligned[1][0, 0, 0] == 6.0


def test_attributes_and_encoded_inputs_pass_through():
    inner = Inner()
    model = Batcher(inner, max_windows=8, sot=SOT)
    assert model.is_multilingual is False and model.device == "cpu"
    encoded = ctranslate2.StorageView.from_array(np.full((1, 1, 3), 9.0, dtype=np.float32))
    assert model.generate(encoded, [prompt()]) == [(9.0, tuple(prompt()))]
    assert model.calls_by_windows == {}  # not through the batching thread


@pytest.mark.parametrize("max_windows", [0, 1])
def test_batch_size_one_decodes_each_call_alone(max_windows):
    inner = Inner(threading.Event())
    model = Batcher(inner, max_windows=max_windows, sot=SOT)
    results: dict = {}
    behind_a_held_call(model, inner, results, [(2.0, {}), (3.0, {})])
    assert [w for w, _ in inner.generated] == [1, 1, 1]


def test_with_two_streams_a_second_batch_runs_while_the_first_is_held():
    gate = threading.Event()
    inner = Inner(gate)
    model = Batcher(inner, max_windows=8, sot=SOT, streams=2)
    results: dict = {}
    first = call_in_thread(model, 1.0, results)
    assert inner.started.wait(10)
    second = call_in_thread(model, 2.0, results)
    second.join(10)
    assert results[2.0] == [(2.0, tuple(prompt()))] and 1.0 not in results
    gate.set()
    first.join(10)
    assert results[1.0] == [(1.0, tuple(prompt()))]


def test_on_a_cpu_two_streams_never_encode_at_once():
    """The encoder's attention is the largest transient allocation: one at a time, whatever the streams."""

    class Counting(Inner):
        def __init__(self):
            super().__init__()
            self.active, self.most = 0, 0
            self.guard = threading.Lock()

        def encode(self, features, to_cpu=False):
            with self.guard:
                self.active += 1
                self.most = max(self.most, self.active)
            threading.Event().wait(0.05)
            with self.guard:
                self.active -= 1
            return super().encode(features, to_cpu)

    inner = Counting()
    model = Batcher(inner, max_windows=1, sot=SOT, streams=3)
    results: dict = {}
    threads = [call_in_thread(model, float(v), results) for v in range(6)]
    for thread in threads:
        thread.join(10)
    assert len(results) == 6 and inner.most == 1
    assert len(inner.generated) == 6
