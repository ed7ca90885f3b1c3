"""The engine: a narrow interface over faster-whisper, and the code that loads it.

transcribe(audio, options) -> (segments, info). Segments are produced lazily, so a streaming
response can send each one as it is decoded. Unit tests swap in a fake engine.

    types.py     Options, Segment, Word, Info, the Engine interface: all the views and jobs need
    batcher.py   the Batcher: model calls of concurrent requests decoded together
    whisper.py   WhisperEngine: faster-whisper behind the Engine interface, on the Batcher
    fallback.py  Whisper's temperature fallback for batched (long) audio; imports faster-whisper
    device.py    cpu or cuda, compute type, batch size, streams; loads no model (devcheck.py)
    loader.py    load_engine(): the model loaded, warmed up, or a ModelLoadError saying why

Importing the package imports neither faster-whisper nor CTranslate2: they load with the model.
"""

from whisper_server.engine.device import ModelLoadError
from whisper_server.engine.loader import LoadedEngine, load_engine
from whisper_server.engine.types import SAMPLE_RATE, Engine, Info, Options, Segment, Word

__all__ = [
    "SAMPLE_RATE",
    "Engine",
    "Info",
    "LoadedEngine",
    "ModelLoadError",
    "Options",
    "Segment",
    "Word",
    "load_engine",
]
