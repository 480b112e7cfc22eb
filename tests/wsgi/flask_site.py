"""A small Flask application for the gateway's tests (and ``python -m minihttp wsgi``).

Routing, JSON in and out, a multipart upload, a streamed response, a file response
(``send_file``: werkzeug hands it to ``wsgi.file_wrapper``), errors, query strings and
non-ASCII paths: what a real application does through the gateway.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, abort, jsonify, request, send_file, stream_with_context, url_for

#: The file ``/file`` serves (set by the tests; 100 KiB of this module's text otherwise).
DATA_FILE = os.environ.get("FLASK_SITE_FILE", __file__)


def create_app(name: str = "flask-site") -> Flask:
    """The application factory (``tests.wsgi.flask_site:create_app()``)."""
    app = Flask(name)

    @app.get("/")
    def index() -> str:
        return "Hello from Flask"

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> Any:
        return jsonify(id=user_id, url=url_for("user", user_id=user_id, _external=True))

    @app.get("/path/<path:rest>")
    def path(rest: str) -> Any:
        return jsonify(rest=rest, path=request.path, script_root=request.script_root)

    @app.get("/search")
    def search() -> Any:
        return jsonify(args={k: request.args.getlist(k) for k in request.args},
                       query=request.query_string.decode("latin-1"))

    @app.post("/json")
    def echo_json() -> Any:
        data = request.get_json()
        return jsonify(received=data, kind=type(data).__name__), 201

    @app.post("/upload")
    def upload() -> Any:
        f = request.files["file"]
        content = f.read()
        return jsonify(filename=f.filename, size=len(content),
                       sha256=hashlib.sha256(content).hexdigest(),
                       note=request.form.get("note"))

    @app.post("/raw")
    def raw() -> Any:
        body = request.get_data()
        return jsonify(size=len(body), sha256=hashlib.sha256(body).hexdigest())

    @app.get("/stream")
    def stream() -> Response:
        count = int(request.args.get("n", "5"))

        def lines() -> Iterator[str]:
            for i in range(count):
                yield f"line {i}\n"

        return Response(stream_with_context(lines()), mimetype="text/plain")

    @app.get("/file")
    def file() -> Response:
        return send_file(DATA_FILE, mimetype="application/octet-stream")

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret-internal-detail")

    @app.get("/teapot")
    def teapot() -> str:
        abort(418)

    @app.get("/scheme")
    def scheme() -> Any:
        return jsonify(scheme=request.scheme, remote=request.remote_addr,
                       url=request.url, root_url=request.root_url)

    return app


app = create_app()
