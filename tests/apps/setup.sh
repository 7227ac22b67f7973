#!/usr/bin/env bash
# Install the real app servers of the differential suite (tests/apps/*, tests/common/apps.rs):
#   Python: a venv at target/apps/venv with requirements.txt (Flask on waitress and werkzeug)
#   Node:   tests/apps/node_modules from package-lock.json (Express 4)
#   Java:   the JDK's own HttpServer; nothing to install beyond a JDK (default-jdk-headless
#           from Debian when `java` is absent)
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
  echo "python: installed $(grep -E '^(flask|waitress|werkzeug)==' "$here/requirements.txt" | tr '\n' ' ')into $venv"
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
  echo "node: installed express $(node -p 'require("'"$here"'/node_modules/express/package.json").version') ($(node --version))"
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
