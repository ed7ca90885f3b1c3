"""A stand-in HTTP server for the lab's checks, copied to where it runs: every request gets one fixed
answer, and its method, path and Authorization header are appended to a log, so a test sees exactly
which credentials reached it. Standard library only (the lab hosts have no venv).

    python3 standin.py PORT STATUS LOG [BODY]   (BODY: JSON; default an OpenAI-shaped error envelope)
"""

import http.server
import json
import sys

PORT, STATUS, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
BODY = (sys.argv[4] if len(sys.argv) > 4 else json.dumps({"error": {"message": "stand-in", "type": "x"}})).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(LOG, "a") as log:
            log.write(f"{self.command} {self.path} {self.headers.get('Authorization')}\n")
        self.send_response(STATUS)
        if STATUS == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
