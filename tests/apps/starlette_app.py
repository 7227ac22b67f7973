"""A plain Starlette app on uvicorn (ASGI) for the differential suite.

    python tests/apps/starlette_app.py

Routes `/signup`, `/checkout` and everything under it, and a catch-all, as Starlette routes
(`Route`, `{rest:path}`). Binds 127.0.0.1 on an ephemeral port, prints `LISTENING <port>`
once it accepts connections, and exits when its stdin closes. Every answer carries
`X-Handler`; the JSON body tells what the framework saw (see tests/common/apps.rs).
"""

import os
import socket
import sys
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

PROTECTED = [
    "x-verified-unique-in-site",
    "x-verified-birth",
    "x-verified-gender",
    "x-verified-age-ok",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
    "x-host",
    "x-original-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
]

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
           "PROPFIND", "FOO", "QUERY"]


def handler(name):
    async def endpoint(request):
        await request.body()
        status = request.query_params.get("status")
        if status in ("301", "302", "303", "307", "308"):
            return RedirectResponse("/done", status_code=int(status), headers={"X-Handler": name})
        read = {n: request.headers.get(n) for n in PROTECTED if request.headers.get(n) is not None}
        scope = request.scope
        if scope.get("root_path"):
            read["scope:root_path"] = scope["root_path"]
        if request.client:
            read["scope:client"] = request.client.host
        seen = sorted({k.lower() for k in request.headers.keys() if k.lower().startswith("x-verified-")})
        return JSONResponse(
            {
                "handler": name,
                "method": request.method,
                "path": request.url.path,
                "raw": scope.get("raw_path", b"").decode("latin-1"),
                "host": request.headers.get("host"),
                "url_host": request.url.netloc,
                "read": read,
            },
            headers={"X-Handler": name, "X-Identity": ",".join(seen) or "-"},
        )

    return endpoint


app = Starlette(
    routes=[
        Route("/signup", handler("signup"), methods=METHODS),
        Route("/checkout", handler("checkout"), methods=METHODS),
        Route("/checkout/{rest:path}", handler("checkout"), methods=METHODS),
        Route("/{rest:path}", handler("catchall"), methods=METHODS),
    ]
)


def main():
    def watch():
        try:
            sys.stdin.read()
        finally:
            os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="error", access_log=False, lifespan="off")
    server = uvicorn.Server(config)

    orig = server.startup

    async def startup(sockets=None):
        await orig(sockets=sockets)
        sys.stdout.write(f"LISTENING {port}\n")
        sys.stdout.flush()

    server.startup = startup
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
