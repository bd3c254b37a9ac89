"""Run an ASGI app with uvicorn on a real socket in a daemon thread (tests, embedding)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal


def run_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: Literal["on", "off"] = "on",
    start_timeout_s: float = 15.0,
) -> tuple[str, Callable[[], None]]:
    """Start uvicorn and return (``http://host:port``, stop). Port 0 picks a free one."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    # log_config=None: logging belongs to the entrypoint; uvicorn must not replace it.
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan=lifespan, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the server on {host}:{bound_port} did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=start_timeout_s)
        sock.close()

    return f"http://{host}:{bound_port}", stop
