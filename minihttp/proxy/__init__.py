"""The forward proxy: ``python -m minihttp proxy``, or :class:`ProxyHandler` in your own server.

One job: relay absolute-form ``http://`` requests to their origin (and ``CONNECT`` tunnels),
strictly and fast. The modules, each one idea (see :mod:`minihttp.proxy.handler` for how
they chain):

* :mod:`~minihttp.proxy.handler`: the public handler, its servers and the command line;
* :mod:`~minihttp.proxy.route`: admission (allow/deny, auth), targets, the proxy's own answers;
* :mod:`~minihttp.proxy.upstream`: one upstream exchange (retries, 502/504, the relay);
* :mod:`~minihttp.proxy.general` / :mod:`~minihttp.proxy.fast`: requests a hook sees / the
  hook-less one-pass path;
* :mod:`~minihttp.proxy.connections`: resolving, connecting and pooling upstream connections;
* :mod:`~minihttp.proxy.headers`: hop-by-hop rules, Via, the heads hooks see;
* :mod:`~minihttp.proxy.tunnel`: the CONNECT relay, :mod:`~minihttp.proxy.hub`: every tunnel
  on one thread; :mod:`~minihttp.proxy.config`: policy;
* :mod:`~minihttp.proxy.chain`: parent proxies (``--upstream``), :mod:`~minihttp.proxy.socks`:
  the SOCKS5 listener (``--socks``), :mod:`~minihttp.proxy.strict`: which upstream response
  heads are refused as ambiguous.
"""

from __future__ import annotations

from minihttp.proxy.handler import (
    HOP_BY_HOP,
    IDEMPOTENT,
    PROTECTED,
    PooledProxyServer,
    ProxyConfig,
    ProxyHandler,
    ProxyRequest,
    ProxyResponse,
    ProxyServer,
    ProxyServerMixIn,
    config_from_args,
    connection_options,
    end_to_end,
    main,
    via_has,
)

__all__ = [
    "HOP_BY_HOP",
    "IDEMPOTENT",
    "PROTECTED",
    "PooledProxyServer",
    "ProxyConfig",
    "ProxyHandler",
    "ProxyRequest",
    "ProxyResponse",
    "ProxyServer",
    "ProxyServerMixIn",
    "config_from_args",
    "connection_options",
    "end_to_end",
    "main",
    "via_has",
]
