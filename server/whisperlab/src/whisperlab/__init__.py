"""The whisperlab command: compare endpoints, transcribe in bulk (docs/whisperlab.md)."""
