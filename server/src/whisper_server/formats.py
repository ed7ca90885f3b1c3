"""Response formatters: pure functions of (segments, info, request) -> (body, mimetype)."""

from __future__ import annotations

import json
import math
from typing import Callable, Sequence

from whisper_server.engine.types import Info, Segment

# Whisper's language codes and the English names OpenAI reports in verbose_json.
LANGUAGES = dict(
    pair.split(":")
    for pair in (
        "en:english zh:chinese de:german es:spanish ru:russian ko:korean fr:french ja:japanese "
        "pt:portuguese tr:turkish pl:polish ca:catalan nl:dutch ar:arabic sv:swedish it:italian "
        "id:indonesian hi:hindi fi:finnish vi:vietnamese he:hebrew uk:ukrainian el:greek ms:malay "
        "cs:czech ro:romanian da:danish hu:hungarian ta:tamil no:norwegian th:thai ur:urdu "
        "hr:croatian bg:bulgarian lt:lithuanian la:latin mi:maori ml:malayalam cy:welsh sk:slovak "
        "te:telugu fa:persian lv:latvian bn:bengali sr:serbian az:azerbaijani sl:slovenian "
        "kn:kannada et:estonian mk:macedonian br:breton eu:basque is:icelandic hy:armenian "
        "ne:nepali mn:mongolian bs:bosnian kk:kazakh sq:albanian sw:swahili gl:galician "
        "mr:marathi pa:punjabi si:sinhala km:khmer sn:shona yo:yoruba so:somali af:afrikaans "
        "oc:occitan ka:georgian be:belarusian tg:tajik sd:sindhi gu:gujarati am:amharic "
        "yi:yiddish lo:lao uz:uzbek fo:faroese ht:haitian_creole ps:pashto tk:turkmen "
        "nn:nynorsk mt:maltese sa:sanskrit lb:luxembourgish my:myanmar bo:tibetan tl:tagalog "
        "mg:malagasy as:assamese tt:tatar haw:hawaiian ln:lingala ha:hausa ba:bashkir "
        "jw:javanese su:sundanese yue:cantonese"
    ).split()
)
LANGUAGES = {code: name.replace("_", " ") for code, name in LANGUAGES.items()}


def full_text(segments: Sequence[Segment]) -> str:
    return "".join(s.text for s in segments).strip()


def usage(info: Info) -> dict:
    # OpenAI bills whisper-1 by the second, rounded up.
    return {"type": "duration", "seconds": int(math.ceil(info.duration))}


def timestamp(seconds: float, separator: str) -> str:
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def as_json(segments, info, granularities=(), task="transcribe") -> tuple[str, str]:
    return json.dumps({"text": full_text(segments), "usage": usage(info)}, ensure_ascii=False), "application/json"


def as_text(segments, info, granularities=(), task="transcribe") -> tuple[str, str]:
    return full_text(segments) + "\n", "text/plain; charset=utf-8"


def as_srt(segments, info, granularities=(), task="transcribe") -> tuple[str, str]:
    cues = [
        f"{n}\n{timestamp(s.start, ',')} --> {timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for n, s in enumerate(segments, start=1)
    ]
    return "\n".join(cues) + ("\n" if cues else ""), "application/x-subrip; charset=utf-8"


def as_vtt(segments, info, granularities=(), task="transcribe") -> tuple[str, str]:
    cues = [f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{s.text.strip()}\n" for s in segments]
    return "WEBVTT\n\n" + "\n".join(cues), "text/vtt; charset=utf-8"


def verbose(segments, info, granularities, task: str = "transcribe") -> dict:
    body: dict = {
        "task": task,
        # A translation's text is English whatever was spoken, and OpenAI reports it so.
        "language": "english" if task == "translate" else LANGUAGES.get(info.language, info.language),
        "duration": round(info.duration, 3),
        "text": full_text(segments),
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {
                "id": s.id,
                "seek": s.seek,
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
            for s in segments
        ]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for s in segments
            for w in (s.words or ())
        ]
    body["usage"] = usage(info)
    return body


def as_verbose_json(segments, info, granularities=(), task="transcribe") -> tuple[str, str]:
    return json.dumps(verbose(segments, info, granularities, task), ensure_ascii=False), "application/json"


FORMATTERS: dict[str, Callable] = {
    "json": as_json,
    "text": as_text,
    "srt": as_srt,
    "vtt": as_vtt,
    "verbose_json": as_verbose_json,
}
