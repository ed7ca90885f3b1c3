"""whisper_server: an OpenAI-compatible transcription service on faster-whisper."""

from importlib.metadata import PackageNotFoundError, version

try:
    # As installed: a wheel from server/tools/dist.py carries its source's digest (0.1.0+src.<digest>).
    __version__ = version("whisper-server")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.1.0"
