"""The "real apps" bench's plain Python app: the standard library's http.server speaking
HTTP/1.1 keep-alive, threaded (as `python -m http.server` is), Nagle on. Like many legacy apps
it writes the headers (end_headers flushes them) and the body in two sends.

    python benches/apps/http_server_app.py PORT
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"hello\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        pass  # a load generator hanging up is no error worth a traceback


Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
