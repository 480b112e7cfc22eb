"""nginx as the static-file reference: a generated config in a temporary directory.

The config is written for a fair and self-contained comparison: one process
(``master_process off``, so the single Python process competes with a single nginx process),
``sendfile on`` (nginx's normal static setup), no access log, every path it writes (pid, error
log, temp dirs) inside the temporary directory so nothing on the system is touched, and
``keepalive_requests`` raised so nginx does not close keep-alive connections every 1000
requests (the Python servers never do; reconnecting would cost nginx, not help it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["GZIP", "NGINX_CANDIDATES", "find_nginx", "nginx_argv", "write_nginx_conf"]

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")

_CONF = """\
daemon off;
master_process off;
worker_processes 1;
{user}pid {work}/nginx.pid;
error_log {work}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    types {{
        text/html html;
        text/plain txt;
        text/javascript js;
        application/octet-stream bin;
    }}
{gzip}
    default_type application/octet-stream;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;

    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def find_nginx() -> str:
    """Path to the nginx binary, or exit with how to install it."""
    path = shutil.which("nginx") or next(
        (p for p in NGINX_CANDIDATES if os.access(p, os.X_OK)), None)
    if path is None:
        raise SystemExit("nginx not found: install it with `apt-get install nginx-light`.")
    return path


#: ``gzip on`` as a site would set it for text, at nginx's default level (1: fastest; minihttp
#: ``--compress`` uses 6, which costs ~15x the CPU here but is paid once per file).
#: nginx compresses on every request: it keeps no compressed copy.
GZIP = """\
    gzip on;
    gzip_min_length 1024;
    gzip_types text/plain text/javascript application/javascript application/json;
"""


def write_nginx_conf(work: Path, root: Path, port: int, gzip: bool = False) -> Path:
    """Write ``work/nginx.conf`` serving ``root`` on 127.0.0.1:``port``; return its path.

    ``gzip``: compress text responses (:data:`GZIP`) for clients that accept it.
    """
    # Running as root, nginx would switch to the "nobody" user for workers; with
    # master_process off it does not, but say "user root" so a root run can read the root dir.
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(_CONF.format(user=user, work=work, root=root, port=port,
                                 gzip=GZIP if gzip else ""))
    return conf


def nginx_argv(conf: Path, work: Path) -> list[str]:
    """The command line that runs nginx in the foreground with ``conf``."""
    # -e: the early error log (before the config is read) goes to the work dir too, not to
    # /var/log/nginx, which may not exist or be writable.
    return [find_nginx(), "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf)]
