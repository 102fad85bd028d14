"""A tiny scripted HTTP server on a real Unix socket, for client tests that need no engine.

Each route maps (method, path without the /vX.Y prefix) to a function returning
(status, headers, body chunks). The server records every request line it saw.
"""

from __future__ import annotations

import os
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

Reply = tuple[int, dict[str, str], Iterable[bytes]]
Route = Callable[["Handler"], Reply]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubServer

    def log_message(self, *args: Any) -> None:  # the stub stays quiet
        pass

    def _handle(self) -> None:
        self.body = b""
        if self.headers.get("Transfer-Encoding") == "chunked":
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                self.body += self.rfile.read(size)
                self.rfile.readline()
        elif self.headers.get("Content-Length"):
            self.body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.command, self.path, dict(self.headers), self.body))
        path = self.path.split("?", 1)[0]
        version = ""
        if path.startswith("/v1."):
            version, _, rest = path[2:].partition("/")
            path = "/" + rest
        self.api_version = version
        route = self.server.routes.get((self.command, path))
        if route is None:
            status, headers, chunks = 404, {"Content-Type": "text/plain"}, [b"404 page not found\n"]
        else:
            status, headers, chunks = route(self)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        chunks = list(chunks)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _handle


class StubServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, routes: dict[tuple[str, str], Route], api_version: str | None = "1.41") -> None:
        self.dir = tempfile.mkdtemp(prefix="wb-stub-")
        self.sock = os.path.join(self.dir, "engine.sock")
        self.routes = dict(routes)
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        headers = {"Api-Version": api_version} if api_version else {}
        self.routes.setdefault(("GET", "/_ping"), lambda h: (200, headers, [b"OK"]))
        super().__init__(self.sock, Handler)
        self.thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        Path(self.sock).unlink(missing_ok=True)
        os.rmdir(self.dir)


def json_reply(obj: Any, status: int = 200) -> Reply:
    import json

    return status, {"Content-Type": "application/json"}, [json.dumps(obj).encode()]
