"""A minimal AWS Lambda Runtime API (2018-06-01) on a loopback port: hands a
function binary one event per /next, records its response, and times its
cold start. Used by measure_lambdas.py; the real runtime is not needed to run
a `bootstrap` binary locally.
"""
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RuntimeApi:
    def __init__(self):
        self.events = []          # JSON-serialisable payloads still to deliver
        self.results = []         # (request_id, status, body, handled_seconds)
        self.first_next_at = None # when the function finished its init
        self._pending = {}        # request id -> time delivered
        self._cond = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    self.send_error(404)
                    return
                with api._cond:
                    if api.first_next_at is None:
                        api.first_next_at = time.monotonic()
                    api._cond.notify_all()
                    while not api.events:
                        api._cond.wait()
                    event = api.events.pop(0)
                    request_id = str(uuid.uuid4())
                    api._pending[request_id] = time.monotonic()
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 300_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:local")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                parts = self.path.strip("/").split("/")
                # /2018-06-01/runtime/invocation/{id}/response|error, /2018-06-01/runtime/init/error
                status = parts[-1]
                request_id = parts[-2] if status in ("response", "error") and "invocation" in parts else None
                with api._cond:
                    started = api._pending.pop(request_id, None)
                    took = time.monotonic() - started if started else 0.0
                    api.results.append((request_id, status, body.decode(errors="replace"), took))
                    api._cond.notify_all()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, event, timeout=300):
        """Queues one event and waits for the function's answer."""
        with self._cond:
            n = len(self.results)
            self.events.append(event)
            self._cond.notify_all()
            deadline = time.monotonic() + timeout
            while len(self.results) == n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the function did not answer")
                self._cond.wait(left)
            return self.results[-1]

    def wait_for_init(self, timeout=60):
        with self._cond:
            deadline = time.monotonic() + timeout
            while self.first_next_at is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the function never asked for an event")
                self._cond.wait(left)
            return self.first_next_at

    def close(self):
        self.server.shutdown()
