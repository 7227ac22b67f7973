#!/usr/bin/env bash
# A soak (not CI; docs/operations/faults.md, "Soak"): verigate in front of a small app, with a
# Redis store of its own, under mixed traffic for SOAK_SECONDS (default 1800, 30 minutes):
#   - verifications: whole Iamport flows through the sandbox (benches/mint_sessions.py), each a
#     new person with a new session;
#   - signups: each new person POSTs /signup (one-account route; the app answers 200), then
#     once more (verigate must answer 409: a second account);
#   - gated requests with those sessions, and pass-through requests, continuously;
#   - a config reload (POST /reload on the admin listener) every SOAK_RELOAD_EVERY s (60);
#   - Redis killed and restarted (append-only file kept) every SOAK_REDIS_EVERY s (300).
# Every SOAK_SAMPLE_EVERY s (10) it samples verigate's RSS (kB), open files, and the store
# (Redis keys and used_memory bytes) into $SOAK_OUT (default soak.csv), and prints the first
# and last samples and the request tallies at the end. Exits non-zero when a second account
# was opened, a flow failed outright, or verigate died.
#
# Usage: benches/soak.sh            (30 minutes, release build)
#        SOAK_SECONDS=180 SOAK_BIN=target/debug/verigate benches/soak.sh   (a short run)
# Needs: cargo, python3, redis-server, redis-cli, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TOTAL=${SOAK_SECONDS:-1800}
RELOAD_EVERY=${SOAK_RELOAD_EVERY:-60}
REDIS_EVERY=${SOAK_REDIS_EVERY:-300}
SAMPLE_EVERY=${SOAK_SAMPLE_EVERY:-10}
OUT=${SOAK_OUT:-soak.csv}
for tool in cargo python3 redis-server redis-cli curl; do
  command -v "$tool" >/dev/null || { echo "benches/soak.sh: missing $tool" >&2; exit 2; }
done
if [ -n "${SOAK_BIN:-}" ]; then
  BIN=$SOAK_BIN
else
  cargo build --release --bin verigate --locked --quiet
  BIN=${CARGO_TARGET_DIR:-target}/release/verigate
fi

WORK=$(mktemp -d)
PIDS=()
REDIS_PID=
cleanup() {
  for p in "${PIDS[@]}" $REDIS_PID; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}" $REDIS_PID; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r P_UP P_VG P_ADMIN P_SB P_REDIS < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
wait_port() { # port path
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$1$2" && return 0
    sleep 0.1
  done
  echo "benches/soak.sh: nothing answers on port $1" >&2
  exit 1
}

start_redis() {
  redis-server --port "$P_REDIS" --bind 127.0.0.1 --dir "$WORK" --appendonly yes \
    --save "" --daemonize no >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$P_REDIS" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "benches/soak.sh: redis did not start" >&2
  exit 1
}
start_redis

# The app: 200 to everything (GET and POST), kept alive.
cat > "$WORK/app.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    do_GET = do_POST = answer
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$WORK/app.py" "$P_UP" &
PIDS+=($!)
"$BIN" sandbox --listen "127.0.0.1:$P_SB" >/dev/null 2>&1 &
PIDS+=($!)

cat > "$WORK/verigate.yaml" <<EOF
listen: 127.0.0.1:$P_VG
admin_listen: 127.0.0.1:$P_ADMIN
upstream: { addrs: ["127.0.0.1:$P_UP"] }
access_log: false
session: { cookie: vg, secure: false, keys_env: SOAK_KEYS, hash_key_env: SOAK_KEYS }
providers:
  iamport:
    imp_code: imp00000000
    api_key_env: SOAK_IMP_KEY
    api_secret_env: SOAK_IMP_SECRET
    base_url: http://127.0.0.1:$P_SB/iamport
    sdk_url: http://127.0.0.1:$P_SB/iamport/js/iamport.js
store: { kind: redis, url: "redis://127.0.0.1:$P_REDIS/0" }
# One client address makes every verification here: its start limit is raised to let them.
limits: { verification_starts: { per_client: { burst: 600, per_minute: 600 } } }
routes:
  - name: signup
    match: { path: /signup, methods: [GET, POST] }
    require: { providers: [iamport], min_age: 19, age_rule: youth_act, one_account_per_person: true }
  - name: gated
    match: { path_prefix: /gated }
    require: { providers: [iamport], min_age: 19, age_rule: youth_act }
  - name: pass
    match: { path_prefix: / }
EOF
SOAK_KEYS=$("$BIN" keygen | sed -n 's/^VERIGATE_SESSION_KEYS=//p')
SOAK_KEYS="$SOAK_KEYS" SOAK_IMP_KEY=sandbox_key SOAK_IMP_SECRET=sandbox_secret \
  "$BIN" run -c "$WORK/verigate.yaml" >/dev/null 2>"$WORK/verigate.log" &
VG_PID=$!
PIDS+=($VG_PID)
wait_port "$P_SB" /iamport/js/iamport.js
wait_port "$P_ADMIN" /readyz

sample() { # elapsed seconds
  local rss fds keys mem
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$VG_PID/status")
  fds=$(ls "/proc/$VG_PID/fd" | wc -l)
  keys=$(redis-cli -p "$P_REDIS" dbsize 2>/dev/null || echo "")
  mem=$(redis-cli -p "$P_REDIS" info memory 2>/dev/null | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
  echo "$1,$rss,$fds,$keys,$mem" >>"$OUT"
}
echo "seconds,rss_kb,open_files,store_keys,store_bytes" >"$OUT"

# The traffic: one driver, a few threads (verify+signup, gated, pass), tallies on stdout.
cat > "$WORK/driver.py" <<'EOF'
import collections, http.client, os, subprocess, sys, threading, time
vg, sb, admin, secs, work = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
end = time.time() + secs
tally = collections.Counter()
sessions = []
lock = threading.Lock()

def req(method, path, cookie=None):
    c = http.client.HTTPConnection("127.0.0.1", vg, timeout=10)
    try:
        h = {"Cookie": "vg=" + cookie} if cookie else {}
        body = "name=x" if method == "POST" else None
        if body: h["Content-Type"] = "application/x-www-form-urlencoded"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse(); r.read()
        return r.status
    except Exception:
        return "error"
    finally:
        c.close()

def verify_and_sign_up():
    batch = 0
    while time.time() < end:
        batch += 1
        out = f"{work}/minted.{batch}"
        env = {**os.environ, "MINT_PERSON_OFFSET": str(batch * 5)}
        p = subprocess.run([sys.executable, "benches/mint_sessions.py", str(vg), str(sb), str(admin), "vg", "5", "1", out],
                           capture_output=True, text=True, env=env)
        if p.returncode != 0:
            tally["verification_failed"] += 1
            if tally["verification_failed"] == 1:
                print("first failed verification:", (p.stderr or p.stdout).strip()[-200:])
            time.sleep(1)
            continue
        for cookie in open(out).read().split():
            tally["verification_ok"] += 1
            first, second = req("POST", "/signup", cookie), req("POST", "/signup", cookie)
            tally[f"signup_first_{first}"] += 1
            tally[f"signup_second_{second}"] += 1
            with lock:
                sessions.append(cookie)
                del sessions[:-50]

def gated():
    while time.time() < end:
        with lock:
            cookie = sessions[-1] if sessions else None
        tally[f"gated_{req('GET', '/gated/x', cookie)}"] += 1

def passing():
    while time.time() < end:
        tally[f"pass_{req('GET', '/page')}"] += 1

threads = [threading.Thread(target=f) for f in (verify_and_sign_up, gated, gated, passing)]
for t in threads: t.start()
for t in threads: t.join()
for k, v in sorted(tally.items()): print(f"{k} {v}")
EOF
python3 "$WORK/driver.py" "$P_VG" "$P_SB" "$P_ADMIN" "$SECONDS_TOTAL" "$WORK" >"$WORK/tally" &
DRIVER=$!
PIDS+=($DRIVER)

start=$(date +%s)
next_reload=$RELOAD_EVERY next_redis=$REDIS_EVERY next_sample=0
reloads=0 restarts=0
while kill -0 "$DRIVER" 2>/dev/null; do
  t=$(( $(date +%s) - start ))
  kill -0 "$VG_PID" 2>/dev/null || { echo "benches/soak.sh: verigate died" >&2; tail -20 "$WORK/verigate.log" >&2; exit 1; }
  if [ "$t" -ge "$next_sample" ]; then sample "$t"; next_sample=$(( next_sample + SAMPLE_EVERY )); fi
  if [ "$t" -ge "$next_reload" ]; then
    curl -s -o /dev/null -X POST "http://127.0.0.1:$P_ADMIN/reload" && reloads=$(( reloads + 1 ))
    next_reload=$(( next_reload + RELOAD_EVERY ))
  fi
  if [ "$t" -ge "$next_redis" ]; then
    kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
    start_redis; restarts=$(( restarts + 1 ))
    next_redis=$(( next_redis + REDIS_EVERY ))
  fi
  sleep 1
done
wait "$DRIVER" || true
sample "$(( $(date +%s) - start ))"

echo "soak: ${SECONDS_TOTAL}s, $reloads reloads, $restarts Redis restarts ($BIN)"
echo "samples (seconds,rss_kb,open_files,store_keys,store_bytes) in $OUT; first and last:"
sed -n 2p "$OUT"
tail -n 1 "$OUT"
cat "$WORK/tally"
if grep -qE '^signup_second_(200|201) ' "$WORK/tally"; then
  echo "benches/soak.sh: a second account was opened" >&2
  exit 1
fi
grep -q '^verification_ok ' "$WORK/tally" || { echo "benches/soak.sh: no verification succeeded" >&2; exit 1; }
