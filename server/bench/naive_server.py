"""The baseline the benchmark compares against: the seed's naive design. Flask's own threaded server,
one shared model, every upload written to a temp file and passed by path. Not for use."""

from __future__ import annotations

import argparse
import os
import tempfile

from faster_whisper import WhisperModel
from flask import Flask, jsonify, request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--beam-size", type=int, default=5)
    args = parser.parse_args()
    model = WhisperModel(args.model, device="cpu", compute_type="int8")
    app = Flask("naive")

    @app.post("/v1/audio/transcriptions")
    def transcribe():
        upload = request.files["file"]
        fd, path = tempfile.mkstemp(suffix=os.path.splitext(upload.filename or "")[1])
        with os.fdopen(fd, "wb") as out:
            upload.save(out)
        try:
            segments, _ = model.transcribe(path, beam_size=args.beam_size, vad_filter=True)
            return jsonify({"text": "".join(s.text for s in segments).strip()})
        finally:
            os.unlink(path)

    @app.get("/health")
    def health():
        return jsonify({"status": "ready"})

    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
