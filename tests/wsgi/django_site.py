"""A one-file Django project for the gateway's tests (and ``python -m minihttp wsgi``).

No database, no templates, no middleware beyond Django's defaults that need none: routing,
JSON in and out, a multipart upload, ``StreamingHttpResponse``, ``FileResponse`` (Django
hands it to ``wsgi.file_wrapper``), errors, query strings and non-ASCII paths.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import django
from django.conf import settings

#: The file ``/file`` serves.
DATA_FILE = os.environ.get("DJANGO_SITE_FILE", __file__)

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only-not-secret",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "example.com", "test"],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,  # leave the process's logging alone
        USE_X_FORWARDED_HOST=False,
        APPEND_SLASH=False,
    )
    django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (  # noqa: E402
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello from Django", content_type="text/plain")


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    return JsonResponse({"id": item_id, "url": request.build_absolute_uri()})


def echo_path(request: HttpRequest, rest: str) -> JsonResponse:
    return JsonResponse({"rest": rest, "path": request.path, "path_info": request.path_info})


def search(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"args": {k: request.GET.getlist(k) for k in request.GET},
                         "query": request.META["QUERY_STRING"]})


@csrf_exempt
def echo_json(request: HttpRequest) -> JsonResponse:
    data = json.loads(request.body)
    return JsonResponse({"received": data, "method": request.method}, status=201)


@csrf_exempt
def upload(request: HttpRequest) -> JsonResponse:
    f = request.FILES["file"]
    content = f.read()
    return JsonResponse({"filename": f.name, "size": len(content),
                         "sha256": hashlib.sha256(content).hexdigest(),
                         "note": request.POST.get("note")})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    count = int(request.GET.get("n", "5"))

    def lines() -> Iterator[bytes]:
        for i in range(count):
            yield f"line {i}\n".encode()

    return StreamingHttpResponse(lines(), content_type="text/plain")


def file(request: HttpRequest) -> FileResponse:
    return FileResponse(open(DATA_FILE, "rb"),
                        content_type="application/octet-stream")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret-internal-detail")


def client(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"secure": request.is_secure(), "remote": request.META["REMOTE_ADDR"],
                         "url": request.build_absolute_uri()})


urlpatterns: list[Any] = [
    path("", index),
    path("items/<int:item_id>", item),
    path("path/<path:rest>", echo_path),
    path("search", search),
    path("json", echo_json),
    path("upload", upload),
    path("stream", stream),
    path("file", file),
    path("boom", boom),
    path("client", client),
]

application: WSGIHandler = get_wsgi_application()
