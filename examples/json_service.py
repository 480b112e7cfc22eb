"""A small JSON service: items kept in memory, GET to read, POST to add.

    python examples/json_service.py [port]        # then:
    curl -s localhost:8000/items
    curl -s -X POST -d '{"name": "tea"}' localhost:8000/items
    curl -s localhost:8000/items/1

Bad JSON gets 400, unknown paths 404, bodies over 64 KiB 413 (``Limits.max_body``: the
server refuses them before reading a byte). Every error is JSON, including those the server
sends itself (413, 400 for a malformed request, 501 for an unknown method): ``send_error``
fills ``error_message_format`` with ``code``, ``message`` and ``explain`` and sends it as
``error_content_type``, as ``http.server`` does. The two texts come from the status table
or from the handler's own ``send_error(code, message)`` calls; they are HTML-escaped there
(as in ``http.server``), so keep double quotes and backslashes out of your messages, or
override ``send_error`` for arbitrary text.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from minihttp.config import DEFAULT_LIMITS
from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JSONHandler(BaseHTTPRequestHandler):
    """GET /items, GET /items/<id>, POST /items (a JSON object)."""

    protocol_version = "HTTP/1.1"  # keep-alive
    # The errors send_error() sends (the server's own 413, 400, 501 ...) as JSON.
    error_content_type = "application/json"
    error_message_format = '{"error": "%(message)s", "code": %(code)d, "explain": "%(explain)s"}'
    items: dict[int, Any] = {}
    lock = threading.Lock()

    def send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/items":
            with self.lock:
                self.send_json(200, [{"id": k, **v} for k, v in self.items.items()])
            return
        if self.path.startswith("/items/"):
            try:
                item_id = int(self.path[len("/items/"):])
            except ValueError:
                item_id = -1
            with self.lock:
                item = self.items.get(item_id)
            if item is not None:
                self.send_json(200, {"id": item_id, **item})
                return
        self.send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/items":
            self.send_json(404, {"error": "not found"})
            return
        try:
            item = json.loads(self.rfile.read())  # exactly the body, however it was framed
        except ValueError:
            self.send_json(400, {"error": "body is not valid JSON"})
            return
        if not isinstance(item, dict):
            self.send_json(400, {"error": "expected a JSON object"})
            return
        with self.lock:
            item_id = max(self.items, default=0) + 1
            self.items[item_id] = item
        self.send_json(201, {"id": item_id, **item})


def make_server(port: int = 8000) -> ThreadingHTTPServer:
    """The service on 127.0.0.1:port, bodies limited to 64 KiB."""
    server = ThreadingHTTPServer(("127.0.0.1", port), JSONHandler)
    server.limits = DEFAULT_LIMITS.replace(max_body=64 * 1024)
    return server


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    srv = make_server(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
    with srv:
        print(f"serving on http://127.0.0.1:{srv.server_port}/items")
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
