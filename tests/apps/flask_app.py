"""A plain Flask app for the differential suite: which handler does a real app run?

    python tests/apps/flask_app.py waitress   # served by waitress
    python tests/apps/flask_app.py werkzeug   # served by werkzeug's threaded dev server
    python tests/apps/flask_app.py gunicorn   # served by gunicorn (sync workers)

Binds 127.0.0.1 on an ephemeral port, prints `LISTENING <port>` once it accepts
connections, and exits when its stdin closes. Every response is 200 with an
`X-Handler` header and a JSON body telling what the framework saw.
"""

import hashlib
import logging
import os
import sys
import socket
import threading

from flask import Flask, jsonify, redirect, request

# The identity, forwarding and override headers whose values the app reads (the JSON's
# `read`), each through the framework's own header accessor (the differential suite asserts
# that none holds a value the client chose).
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

# Every method the app answers; Flask needs them listed. OPTIONS listed here turns off
# Flask's automatic OPTIONS answer, so the view handles it like any other method.
METHODS = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "CONNECT",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
    "PURGE",
    "QUERY",
]

app = Flask(__name__)

# How many POSTs each handler has run (a kept request must reach it exactly once).
POSTS = {}
POSTS_LOCK = threading.Lock()


def answer(handler):
    body = request.get_data()  # read the body fully, so keep-alive works
    with POSTS_LOCK:
        if request.method == "POST":
            POSTS[handler] = POSTS.get(handler, 0) + 1
        posts = POSTS.get(handler, 0)
    env = request.environ
    raw = env.get("RAW_URI") or env.get("REQUEST_URI")
    if raw is None:
        raw = env.get("PATH_INFO", "")
        if env.get("QUERY_STRING"):
            raw += "?" + env["QUERY_STRING"]
    read = {n: request.headers.get(n) for n in PROTECTED if request.headers.get(n) is not None}
    # What the WSGI server put in the environment (a server may take some from headers).
    for key in ("REMOTE_USER", "SCRIPT_NAME", "PATH_INFO", "REMOTE_ADDR"):
        if env.get(key):
            read["env:" + key] = env[key]
    status = request.args.get("status")
    if status in ("301", "302", "303", "307", "308"):
        resp = redirect("/done", code=int(status))
        resp.headers["X-Handler"] = handler
        return resp
    resp = jsonify(
        handler=handler,
        method=request.method,
        path=request.path,
        raw=raw,
        host=request.host,
        read=read,
        verified=request.headers.get("x-verified-unique-in-site"),
        age_ok=request.headers.get("x-verified-age-ok"),
        # What the handler received: the body's digest and type, and its POSTs so far.
        body_sha256=hashlib.sha256(body).hexdigest(),
        content_type=request.content_type,
        form=request.form.to_dict() if request.form else None,
        posts=posts,
    )
    resp.headers["X-Handler"] = handler
    # The names of the identity headers that reached the app, sorted (which route's
    # identity the proxy injected).
    resp.headers["X-Identity"] = ",".join(
        sorted({k.lower() for k, _ in request.headers.items() if k.lower().startswith("x-verified-")})
    ) or "-"
    return resp


@app.route("/signup", methods=METHODS)
def signup():
    return answer("signup")


@app.route("/checkout", methods=METHODS)
@app.route("/checkout/<path:rest>", methods=METHODS)
def checkout(rest=None):
    return answer("checkout")


@app.route("/", methods=METHODS)
@app.route("/<path:p>", methods=METHODS)
def catchall(p=None):
    return answer("catchall")


def exit_on_stdin_eof():
    def watch():
        try:
            sys.stdin.read()
        finally:
            os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def announce(port):
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()


def main():
    server_kind = sys.argv[1] if len(sys.argv) > 1 else ""
    exit_on_stdin_eof()
    if server_kind == "waitress":
        import waitress

        logging.getLogger("waitress").setLevel(logging.ERROR)
        server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
        announce(server.effective_port)
        server.run()
    elif server_kind == "werkzeug":
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        announce(server.server_port)
        server.serve_forever()
    elif server_kind == "gunicorn":
        from gunicorn.app.base import BaseApplication

        # The socket is bound here (port 0) and handed to gunicorn by its descriptor.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.set_inheritable(True)
        port = sock.getsockname()[1]

        class Gunicorn(BaseApplication):
            def load_config(self):
                self.cfg.set("bind", [f"fd://{sock.fileno()}"])
                self.cfg.set("workers", 2)
                self.cfg.set("loglevel", "error")
                self.cfg.set("when_ready", lambda _server: announce(port))

            def load(self):
                return app

        Gunicorn().run()
    else:
        sys.stderr.write("usage: flask_app.py waitress|werkzeug|gunicorn\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
