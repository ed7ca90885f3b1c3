"""whisper_server: an OpenAI-compatible transcription service on faster-whisper."""

__version__ = "0.1.0"
