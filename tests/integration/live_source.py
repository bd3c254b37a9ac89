"""A live MPEG-TS source for tests: FFmpeg plays a clip in real time (``-re``) into a relay that
serves it over TCP like a camera does: whoever is connected gets the stream from now on, data
nobody takes is gone, and the relay can drop its client and refuse new ones for a while.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path

TS_PACKET = 188


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveSource:
    def __init__(self, clip: Path) -> None:
        self._clip = clip
        self._in = socket.create_server(("127.0.0.1", 0))
        self.port = free_port()
        self._out: socket.socket | None = None
        self._client: socket.socket | None = None
        self._lock = threading.Lock()
        self._refuse_until = 0.0
        self._closed = threading.Event()
        self.started_wall: float | None = None  # when clip second 0 arrived
        self.finished = threading.Event()
        self._ffmpeg: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def listen(self) -> None:
        """Accept clients; nothing plays until ``play``."""
        self._listen()
        threading.Thread(target=self._accept_clients, daemon=True).start()
        threading.Thread(target=self._pump, daemon=True).start()

    @property
    def has_client(self) -> bool:
        with self._lock:
            return self._client is not None

    def play(self) -> None:
        self._ffmpeg = subprocess.Popen(
            [
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(self._clip),
                "-c", "copy", "-f", "mpegts",
                f"tcp://127.0.0.1:{self._in.getsockname()[1]}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def drop(self, for_s: float) -> None:
        """Disconnect the client and refuse connections for ``for_s`` (the data is lost)."""
        with self._lock:
            self._refuse_until = time.monotonic() + for_s
            self._close_client()
            if self._out is not None:
                self._out.close()
                self._out = None

    def clip_time(self) -> float:
        assert self.started_wall is not None
        return time.time() - self.started_wall

    def close(self) -> None:
        self._closed.set()
        if self._ffmpeg is not None and self._ffmpeg.poll() is None:
            self._ffmpeg.kill()
            self._ffmpeg.wait()
        with self._lock:
            self._close_client()
            if self._out is not None:
                self._out.close()
        self._in.close()

    def _listen(self) -> None:
        out = socket.socket()
        out.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        out.bind(("127.0.0.1", self.port))
        out.listen(4)
        out.settimeout(0.2)
        self._out = out

    def _close_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.shutdown(socket.SHUT_RDWR)
            self._client.close()
            self._client = None

    def _accept_clients(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                out = self._out
                if out is None and time.monotonic() >= self._refuse_until:
                    self._listen()
                    out = self._out
            if out is None:
                time.sleep(0.05)
                continue
            try:
                conn, _ = out.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._close_client()
                self._client = conn

    def _pump(self) -> None:
        conn, _ = self._in.accept()
        pending = b""
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                if self.started_wall is None:
                    self.started_wall = time.time()
                pending += data
                whole = len(pending) - len(pending) % TS_PACKET
                chunk, pending = pending[:whole], pending[whole:]
                with self._lock:
                    client = self._client
                if client is None or not chunk:
                    continue  # live: what nobody reads now is gone
                try:
                    client.sendall(chunk)
                except OSError:
                    with self._lock:
                        if self._client is client:
                            self._close_client()
        # The clip is over: the source ends, as a camera that is switched off.
        with self._lock:
            self._close_client()
            if self._out is not None:
                self._out.close()
                self._out = None
            self._refuse_until = float("inf")
        self.finished.set()
