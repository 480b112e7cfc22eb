"""A logging, header-rewriting forward proxy in a few lines of minihttp.

    python examples/logging_proxy.py 8080
    curl -x http://127.0.0.1:8080 http://example.org/

Every request is logged with its response status; requests get a ``DNT: 1`` header and lose
their ``Cookie``; responses lose ``Set-Cookie`` and get ``X-Proxied-By``. Requests to hosts
in BLOCKED are answered by the proxy itself. Bodies stream through untouched.
"""

from __future__ import annotations

import logging
import sys

from minihttp.proxy import ProxyHandler, ProxyRequest, ProxyResponse, main

BLOCKED = ("ads.example", "tracker.example")
log = logging.getLogger("logging_proxy")


class LoggingProxy(ProxyHandler):
    def request_hook(self, request: ProxyRequest) -> ProxyRequest | ProxyResponse | None:
        host = request.url.split("/")[2] if "://" in request.url else request.url
        if host.split(":")[0] in BLOCKED:
            log.info("blocked %s %s", request.method, request.url)
            return ProxyResponse(403, "Blocked", [("Content-Type", "text/plain")], b"blocked\n")
        request.set_header("DNT", "1")
        request.remove_header("Cookie")
        return request

    def response_hook(self, request: ProxyRequest, response: ProxyResponse) -> ProxyResponse:
        log.info("%s %s -> %d %s", request.method, request.url, response.status,
                 response.get_header("Content-Type", "-"))
        response.remove_header("Set-Cookie")
        response.set_header("X-Proxied-By", "logging_proxy")
        return response


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(main(sys.argv[1:], handler=LoggingProxy))
