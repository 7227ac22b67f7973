#!/usr/bin/env bash
# Run php_app.php on PHP's built-in server on 127.0.0.1 with a port of its choosing: the
# server names the port on stderr ("Development Server (http://127.0.0.1:PORT) started"),
# which becomes `LISTENING PORT` on stdout. Ends the server when stdin closes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

php -d display_errors=stderr -d log_errors=0 -S 127.0.0.1:0 "$here/php_app.php" \
  2> >(while IFS= read -r line; do
         if [[ $line =~ Development\ Server\ \(http://127\.0\.0\.1:([0-9]+)\)\ started ]]; then
           echo "LISTENING ${BASH_REMATCH[1]}"
         fi
       done) &
pid=$!
cat >/dev/null || true
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
