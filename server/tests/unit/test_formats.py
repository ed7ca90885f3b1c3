"""Formatters are pure functions of segments: tested without a model."""

import json

from whisper_server import formats
from whisper_server.engine import Info, Segment, Word
from whisperlab_testkit import support

SEGMENTS = [
    Segment(
        0,
        0,
        0.0,
        2.5,
        " Hello world.",
        (1, 2),
        0.0,
        -0.25,
        1.3,
        0.05,
        (Word(0.0, 1.0, " Hello", 0.9), Word(1.1, 2.4, " world.", 0.8)),
    ),
    Segment(1, 250, 3661.0015, 3725.5, ' Second line, ünïcode "quoted".', (3,), 0.2, -0.5, 1.6, 0.1, None),
]
INFO = Info("en", 3725.5)


def test_timestamps_round_to_milliseconds():
    assert formats.timestamp(0, ",") == "00:00:00,000"
    assert formats.timestamp(3661.0015, ",") == "01:01:01,002"
    assert formats.timestamp(59.9996, ".") == "00:01:00.000"
    assert formats.timestamp(-0.1, ".") == "00:00:00.000"


def test_json_and_text():
    body, mimetype = formats.as_json(SEGMENTS, INFO)
    assert mimetype == "application/json"
    assert json.loads(body) == {
        "text": 'Hello world. Second line, ünïcode "quoted".',
        "usage": {"type": "duration", "seconds": 3726},
    }
    text, mimetype = formats.as_text(SEGMENTS, INFO)
    assert text == 'Hello world. Second line, ünïcode "quoted".\n'
    assert mimetype.startswith("text/plain")


def test_srt():
    body, _ = formats.as_srt(SEGMENTS, INFO)
    assert body == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello world.\n\n"
        '2\n01:01:01,002 --> 01:02:05,500\nSecond line, ünïcode "quoted".\n\n'
    )


def test_vtt():
    body, mimetype = formats.as_vtt(SEGMENTS, INFO)
    assert mimetype.startswith("text/vtt")
    assert body == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello world.\n\n"
        '01:01:01.002 --> 01:02:05.500\nSecond line, ünïcode "quoted".\n'
    )


def test_empty_transcript_is_still_valid():
    assert formats.as_srt([], INFO)[0] == ""
    assert formats.as_vtt([], INFO)[0] == "WEBVTT\n\n"
    assert json.loads(formats.as_json([], INFO)[0])["text"] == ""


def test_verbose_json_has_every_openai_segment_field():
    body = json.loads(formats.as_verbose_json(SEGMENTS, INFO, (), "transcribe")[0])
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert body["duration"] == 3725.5
    assert body["text"].startswith("Hello world.")
    assert "words" not in body
    first = body["segments"][0]
    assert set(first) == support.OPENAI_SEGMENT_FIELDS
    assert first["tokens"] == [1, 2]
    assert body["segments"][1]["seek"] == 250


def test_verbose_json_granularities():
    words_only = formats.verbose(SEGMENTS, INFO, ("word",))
    assert "segments" not in words_only
    assert words_only["words"] == [
        {"word": "Hello", "start": 0.0, "end": 1.0},
        {"word": "world.", "start": 1.1, "end": 2.4},
    ]
    both = formats.verbose(SEGMENTS, INFO, ("segment", "word"), "translate")
    assert both["task"] == "translate"
    assert len(both["segments"]) == 2 and len(both["words"]) == 2


def test_a_translation_reports_english_whatever_was_spoken():
    german = Info("de", 4.0)
    assert formats.verbose(SEGMENTS, german, (), "translate")["language"] == "english"
    assert formats.verbose(SEGMENTS, german, (), "transcribe")["language"] == "german"


def test_every_whisper_language_has_a_name():
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert set(_LANGUAGE_CODES) == set(formats.LANGUAGES)
    assert formats.LANGUAGES["de"] == "german"
    assert formats.LANGUAGES["ht"] == "haitian creole"
