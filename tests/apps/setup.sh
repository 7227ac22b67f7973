#!/usr/bin/env bash
# Install the real app servers of the differential suite (tests/apps/*, tests/common/apps.rs):
#   Python: a venv at target/apps/venv with requirements.txt (Flask on waitress, werkzeug and
#           gunicorn; Starlette on uvicorn)
#   Node:   tests/apps/node_modules from package-lock.json (Express 4, Fastify 5, Koa 3)
#   Java:   the JDK's own HttpServer (default-jdk-headless from Debian when `java` is absent),
#           and Jetty 9 embedded (Debian libjetty9-java, with libservlet-api-java)
#   PHP:    Debian php-cli (its built-in server)
#   Go:     Debian golang-go; tests/apps/goapp (stdlib only) built into target/apps/goapp
#   Ruby:   Debian ruby, ruby-rack and puma
# Idempotent and fast when everything is in place (stamp files hold the lock files' hashes).
# Exits non-zero when anything cannot be installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/apps/venv"

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_updated=""
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { echo "setup.sh: need $*, and there is no apt-get" >&2; return 1; }
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- Python: Flask on waitress and on werkzeug -------------------------------------------
if ! command -v python3 >/dev/null 2>&1; then
  apt_install python3 python3-venv
fi
py_want="$(hash_of "$here/requirements.txt") $(python3 -c 'import sys; print(sys.version.split()[0])')"
py_stamp="$venv/.setup-stamp"
if [ -x "$venv/bin/python" ] && [ "$(cat "$py_stamp" 2>/dev/null)" = "$py_want" ] \
  && "$venv/bin/python" -c '' 2>/dev/null; then
  echo "python: venv up to date ($venv)"
else
  mkdir -p "$root/target/apps"
  if ! python3 -m venv --clear "$venv" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv (ensurepip) for this
    apt_install python3-venv
    python3 -m venv --clear "$venv"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
  echo "$py_want" >"$py_stamp"
  echo "python: installed $(grep -E '^(flask|waitress|werkzeug|gunicorn|uvicorn|starlette)==' "$here/requirements.txt" | tr '\n' ' ')into $venv"
fi

# --- Node: Express -------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
node_want="$(hash_of "$here/package.json" "$here/package-lock.json") $(node --version)"
node_stamp="$here/node_modules/.setup-stamp"
if [ -d "$here/node_modules/express" ] && [ "$(cat "$node_stamp" 2>/dev/null)" = "$node_want" ]; then
  echo "node: node_modules up to date ($(node --version))"
else
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$node_want" >"$node_stamp"
  echo "node: installed $(cd "$here" && node -p 'const l = require("./package-lock.json").packages; ["express","fastify","koa","@koa/router"].map(p => p + " " + l["node_modules/" + p].version).join(", ")') ($(node --version))"
fi

# --- Java: the JDK's HttpServer, run by the single-file source launcher ----------------------
# The source launcher compiles JdkApp.java in memory: it needs a JDK (jdk.compiler), not a JRE.
if ! command -v java >/dev/null 2>&1 \
  || ! java --list-modules 2>/dev/null | grep -q '^jdk\.compiler@' \
  || ! java --list-modules 2>/dev/null | grep -q '^jdk\.httpserver@'; then
  apt_install default-jdk-headless
fi
java_version="$(java -version 2>&1 | head -n1)" || { echo "java: 'java -version' fails" >&2; exit 1; }
echo "java: $java_version"

# --- Debian-packaged stacks: Jetty 9, PHP, Go, Ruby/Rack on Puma ----------------------------
# Package names are pinned by the Debian release (bookworm: jetty 9.4.57, php 8.2, go 1.19,
# ruby 3.1, rack 2.2, puma 5.6).
debs=(libjetty9-java libservlet-api-java php-cli golang-go ruby ruby-rack puma)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
  echo "debian: installed ${missing[*]}"
fi
for f in jetty9-server jetty9-servlet jetty9-security jetty9-http jetty9-io jetty9-util servlet-api; do
  [ -f "/usr/share/java/$f.jar" ] || { echo "jetty: /usr/share/java/$f.jar is missing" >&2; exit 1; }
done
command -v php >/dev/null || { echo "php: not found after install" >&2; exit 1; }
ruby -e 'require "rack"; require "puma"; require "puma/server"' \
  || { echo "ruby: rack or puma cannot be loaded" >&2; exit 1; }

# Go: build the stdlib-only app into target/apps/goapp (rebuilt when its source or Go changes)
go_want="$(hash_of "$here/goapp/main.go" "$here/goapp/go.mod") $(go version)"
go_stamp="$root/target/apps/goapp.stamp"
if [ -x "$root/target/apps/goapp" ] && [ "$(cat "$go_stamp" 2>/dev/null)" = "$go_want" ]; then
  echo "go: goapp up to date ($(go version | cut -d' ' -f3))"
else
  mkdir -p "$root/target/apps"
  (cd "$here/goapp" && GOFLAGS=-mod=mod GOCACHE="$root/target/apps/gocache" GOPATH="$root/target/apps/gopath" \
    go build -o "$root/target/apps/goapp" .)
  echo "$go_want" >"$go_stamp"
  echo "go: built target/apps/goapp ($(go version | cut -d' ' -f3))"
fi
