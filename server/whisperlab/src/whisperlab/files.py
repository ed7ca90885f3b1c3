"""The audio files a command works on: found in folders, checked before anything is sent, measured.

Nothing here writes to, moves or deletes an input.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Optional

# What a folder is searched for (a file named on the command line is taken whatever its name).
AUDIO_SUFFIXES = {
    ".flac", ".m4a", ".mp3", ".mp4", ".mpeg", ".mpga", ".oga", ".ogg", ".opus", ".wav", ".webm", ".aac", ".amr",
}  # fmt: skip
# OpenAI's upload limit; our servers take the same by default.
MAX_BYTES = 25 * 1024 * 1024


class BadAudio(Exception):
    """This file cannot be sent: the message says why."""


@dataclasses.dataclass(frozen=True)
class Audio:
    path: Path
    root: Path  # the folder it was found in (its own folder for a named file): outputs keep the tree below
    seconds: float
    size: int

    @property
    def relative(self) -> Path:
        return self.path.relative_to(self.root)


def find(inputs: Iterable[str]) -> list:
    """(path, root) for every audio file named or found below a named folder, sorted, each once."""
    found: dict = {}
    for name in inputs:
        path = Path(name).expanduser()
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for file in sorted(files):
                    candidate = Path(folder) / file
                    if candidate.suffix.lower() in AUDIO_SUFFIXES and not file.startswith("."):
                        found.setdefault(candidate.resolve(), (candidate, path))
        elif path.exists():
            found.setdefault(path.resolve(), (path, path.parent))
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return list(found.values())


def measure(path: Path, root: Optional[Path] = None) -> Audio:
    """Opens the file as audio and measures it; BadAudio if it is not audio we can send."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise BadAudio(f"cannot read it: {error.strerror}") from None
    if size == 0:
        raise BadAudio("it is empty")
    if size > MAX_BYTES:
        raise BadAudio(f"it is {size / 1048576:.1f} MiB; the API takes at most {MAX_BYTES // 1048576} MiB")
    return Audio(path, root if root is not None else path.parent, _seconds(path), size)


def _seconds(path: Path) -> float:
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.audio
            if not streams:
                raise BadAudio("it has no audio stream")
            stream = streams[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000
            # Neither says: count the samples.
            samples = sum(frame.samples for frame in container.decode(stream))
            return samples / (stream.rate or 16000)
    except BadAudio:
        raise
    except Exception as error:  # PyAV raises many kinds; each means "not audio we can read"
        raise BadAudio(f"not readable as audio ({type(error).__name__}: {error})") from None
