"""The "real apps" bench's Flask app, served by gunicorn (sync and gthread workers):

    gunicorn -b 127.0.0.1:PORT --chdir benches/apps wsgi_app:app
"""

from flask import Flask

app = Flask(__name__)


@app.route("/", defaults={"path": ""})
@app.route("/<path:path>")
def hello(path):
    return "hello\n", 200, {"Content-Type": "text/plain"}
