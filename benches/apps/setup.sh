#!/usr/bin/env bash
# Install the Python app servers of `benches/load.sh --real-apps` (gunicorn and Flask, pinned in
# benches/apps/requirements.txt) into a venv of the bench's own:
# ${CARGO_TARGET_DIR:-target}/bench-venv. Node (the `http` app) and nginx come from Debian.
# Idempotent: a stamp file holds the requirements' hash and the Python version.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${CARGO_TARGET_DIR:-target}/bench-venv"
want="$(sha256sum benches/apps/requirements.txt | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
if [ -x "$venv/bin/gunicorn" ] && [ "$(cat "$venv/.setup-stamp" 2>/dev/null)" = "$want" ]; then
  echo "bench venv up to date ($venv)"
  exit 0
fi
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r benches/apps/requirements.txt
echo "$want" > "$venv/.setup-stamp"
echo "installed gunicorn and Flask into $venv"
