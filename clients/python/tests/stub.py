"""A local HTTP stub (http.server in a thread) answering a script of responses, for the
transport-level behaviour (retries) that a real govledgerd does not produce on demand."""

import http.server
import json
import threading
from typing import Dict, List, Optional, Tuple


class Stub:
    """Answers each request with the next `(status, headers, body)` of `script` (the last one
    repeats) and records `(method, path, body)` of every request."""

    def __init__(self, script: List[Tuple[int, Dict[str, str], str]]):
        self.script = list(script)
        self.requests: List[Tuple[str, str, Optional[dict]]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                stub.requests.append((self.command, self.path, json.loads(raw) if raw else None))
                status, headers, body = stub.script[min(len(stub.requests), len(stub.script)) - 1]
                data = body.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "Stub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


RECEIPT = json.dumps({"index": 7, "leaf_hash": "ab" * 32, "tree_size": 8})


def unavailable(retry_after: Optional[str] = None, status: int = 503):
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return status, headers, json.dumps({"error": "unavailable", "message": "try later"})


def ok(body: str = RECEIPT):
    return 200, {"Content-Type": "application/json"}, body
