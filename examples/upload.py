"""Streaming file upload: PUT or POST a raw body to /<name>, stored under a directory.

    python examples/upload.py [port] [directory]   # then:
    curl -T big.iso localhost:8000/big.iso          # PUT, Content-Length
    curl -H 'Transfer-Encoding: chunked' --data-binary @big.iso localhost:8000/big.iso

The body is copied to disk in 64 KiB pieces, never held whole in memory; ``self.rfile`` is
exactly the body (Content-Length or de-chunked), so a plain read loop is all it takes.
Multipart form uploads (``multipart/form-data``) are not handled: send the raw file.
"""

from __future__ import annotations

import os
import sys
import tempfile

from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIECE = 64 * 1024


class UploadHandler(BaseHTTPRequestHandler):
    """Store the request body as ``<directory>/<name>``; answer 201 with the size."""

    protocol_version = "HTTP/1.1"
    directory = "."

    def do_PUT(self) -> None:
        name = self.path.lstrip("/")
        # One plain file name: no directories, no dot files, nothing that climbs out.
        if not name or "/" in name or "\\" in name or name.startswith("."):
            self.send_error(400, "Bad file name")
            return
        final = os.path.join(self.directory, name)
        fd, partial = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while piece := self.rfile.read(PIECE):
                    out.write(piece)
                    size += len(piece)
            os.replace(partial, final)  # readers never see a half-written file
        except BaseException:
            os.unlink(partial)
            raise
        body = b"%d bytes stored\n" % size
        self.send_response(201)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    UploadHandler.directory = sys.argv[2] if len(sys.argv) > 2 else "."
    srv = ThreadingHTTPServer(("127.0.0.1", port), UploadHandler)
    with srv:
        print(f"storing uploads in {os.path.abspath(UploadHandler.directory)}")
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
