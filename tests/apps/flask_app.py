"""A plain Flask app for the differential suite: which handler does a real app run?

    python tests/apps/flask_app.py waitress   # served by waitress
    python tests/apps/flask_app.py werkzeug   # served by werkzeug's threaded dev server

Binds 127.0.0.1 on an ephemeral port, prints `LISTENING <port>` once it accepts
connections, and exits when its stdin closes. Every response is 200 with an
`X-Handler` header and a JSON body telling what the framework saw.
"""

import hashlib
import logging
import os
import sys
import threading

from flask import Flask, jsonify, request

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
    resp = jsonify(
        handler=handler,
        method=request.method,
        path=request.path,
        raw=raw,
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
    else:
        sys.stderr.write("usage: flask_app.py waitress|werkzeug\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
