"""A real webhook receiver on 127.0.0.1 for tests and the bench: records every request and
answers as it is told (fail the first N attempts of each delivery, never answer, be down)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    delivery_id: str
    event: str
    signature: str
    body: bytes
    status: int
    at: float  # time.time() when it arrived


@dataclass
class Receiver:
    fail_first: int = 0  # answer 500 to the first N attempts of each delivery id
    hang: bool = False  # read the request, never answer
    down: bool = False  # answer 503 to everything
    requests: list[Received] = field(default_factory=list)
    _tries: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)

    def start(self) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                delivery = self.headers.get("Vidloc-Delivery", "")
                if owner.hang:
                    owner._release.wait(120)
                    return
                with owner._lock:
                    owner._tries[delivery] += 1
                    failing = owner.down or owner._tries[delivery] <= owner.fail_first
                    status = 500 if failing else 200
                    owner.requests.append(
                        Received(
                            delivery,
                            self.headers.get("Vidloc-Event", ""),
                            self.headers.get("Vidloc-Signature", ""),
                            body,
                            status,
                            time.time(),
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.status == 200]
