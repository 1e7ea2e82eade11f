"""A fault-injecting HTTP proxy in front of the real Label Studio.

The worker talks to Label Studio through it; a test can make chosen calls
answer 500, hang for a while (to kill the worker mid-call), or make Label
Studio unreachable, and then heal it.  Everything else is forwarded as is.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class FaultProxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.fail: dict[str, int] = {}  # path fragment -> status to answer
        self.delay: dict[str, float] = {}  # path fragment -> seconds to wait before forwarding
        self.down = False
        self.seen: list[tuple[str, str, int]] = []
        self.arrived: list[tuple[str, str]] = []  # every request, when it arrives
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.arrived.append((self.command, self.path))
                if proxy.down:
                    self.close_connection = True
                    self.connection.close()  # unreachable: the connection just drops
                    return
                for fragment, seconds in list(proxy.delay.items()):
                    if fragment in self.path:
                        time.sleep(seconds)
                for fragment, status in list(proxy.fail.items()):
                    if fragment in self.path:
                        proxy.seen.append((self.command, self.path, status))
                        payload = b'{"detail": "injected failure"}'
                        self.send_response(status)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                resp = httpx.request(self.command, proxy.target + self.path, content=body, headers=headers, timeout=60)
                proxy.seen.append((self.command, self.path, resp.status_code))
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def heal(self) -> None:
        self.fail.clear()
        self.delay.clear()
        self.down = False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
