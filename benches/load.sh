#!/usr/bin/env bash
# Load comparison, all on loopback, in one run on one machine:
#   gated        verigate, a verified request on a gated route (cookie open, match, strip, inject)
#   pass         verigate's own pass-through route (no `require`)
#   bare         a bare Pingora proxy (benches/bare_pingora.rs: no filters, verigate's Pingora
#                settings, the same build profile, one thread): the engine without verigate
#   nginx-proxy  plain nginx proxy_pass to the same upstream
#   nginx-auth   nginx auth_request to an auth service in its own process (a second nginx that
#                answers a static 200: the cheapest auth backend there is), then proxy_pass
# The upstream app is a static nginx. Every nginx has one worker, verigate one thread.
#
# Sessions: --sessions N (default 10,000) real sessions are minted through the sandbox's Iamport
# flow before any load (benches/mint_sessions.py; verigate issues every cookie), and wrk cycles
# through all of them (benches/sessions.lua), so verigate's session cache meets N distinct
# cookies, not one. Every target gets the same requests (the cookies included).
# While minting: the Iamport token fetches verigate makes for the first 1,000 completions, sent
# all at once to a verigate that holds no token yet (goal: 1).
# Then verigate's RSS after minting, after the first pass over the sessions, after 1 million
# verified requests (at most 5 minutes of load) and at the end of the run.
# Then the measured rounds, interleaved; medians and the medians of the per-round ratios are
# printed, and the CPU time per request (from /proc/PID/stat) of the proxy tier, of the auth
# service, of the upstream app, and of the whole system (their sum; wrk not included).
# Then latency without queueing: gated and pass over one connection, one request at a time.
# Then HTTPS and HTTP/2 (unless --no-tls): a second verigate, the same config with TLS on its
# listener (a self-signed certificate made with openssl), in rounds of its own: gated and pass
# over HTTPS with HTTP/1.1 (wrk, the same cycling sessions) and over HTTP/2 (h2load from
# nghttp2-client, one request in flight per connection, the same connection count; h2load
# cannot vary a header per request, so every HTTP/2 request carries the first minted session).
#
# Usage: benches/load.sh [--duration SECONDS] [--rounds N] [--connections C] [--no-memory]
#                        [--request browser|minimal] [--pin] [--sessions N] [--no-tls]
#                        [--real-apps] [--idle N]
# --real-apps: instead of the above, the "real apps" table (benches/real_apps.sh says what).
# --idle N: instead, N idle keep-alive connections beside active ones (benches/idle.sh).
# --pin: the proxy under test (verigate, or the front nginx) runs alone on the last CPU; wrk,
# the upstream nginx, the auth service, the sandbox and the minting share the others. Each
# round then also prints how busy the load side's CPUs were: near 100% means the load side,
# not the proxy, set the pace.
# --sessions N: how many sessions wrk cycles through (default 10000; 1 is the old single-cookie
# run, every lookup a hit in verigate's per-thread cache).
# --request: the headers every measured request carries besides the session cookie: `browser`
# (the default) those of a Chrome page navigation, `minimal` only Host (wrk's bare request).
# VG_PROFILE=release: bench the lighter release build instead of `dist` (for quick iterations;
# published figures use dist). VG_BIN=path: bench that binary as it is (no build), e.g. an
# earlier commit's, to compare two builds; BARE_BIN=path likewise for the bare Pingora proxy
# (built with the same profile as verigate: `cargo build --profile P --example bare_pingora`).
# Variants: VG_ACCESS_LOG=false (no access log on verigate nor on the nginx proxies),
# VG_TUNING='tuning: { work_stealing: true }'.
# CALLGRIND=1: run verigate under valgrind's callgrind instead and count the instructions one
# request costs on each verigate route (2,000 sequential requests each, twice, after a pass
# over all the sessions): a figure that does not move with the machine's load, unlike
# requests/s. One session by default (a hit in the per-thread cache every time); --sessions N
# cycles N (10,000 take under a minute to mint under valgrind here). Needs valgrind.
# CALLGRIND_KEEP=dir keeps the callgrind dumps there, for callgrind_annotate.
# CALLGRIND_CACHE=1: callgrind also simulates the caches (--cache-sim=yes) and prints the data
# reads and writes that miss the last-level cache per request: the memory traffic that many
# sessions cost, which instruction counts do not show (compare --sessions 1 with 10000). The
# simulated last level is 2 MiB, 16-way (the per-core L2 of the 2-core machine; its L3 is shared
# with other machines' work); CALLGRIND_LL=size,assoc,line sets another.
# Needs: cargo, curl, python3, wrk, nginx (Debian: apt-get install wrk nginx-light curl); for
# the HTTPS and HTTP/2 rounds openssl and h2load (apt-get install openssl nghttp2-client): without
# them those rounds are skipped, and the script says so.
# It installs nothing: it says what is missing and stops. Its time is bounded: the `dist`
# build (fat LTO) if it is stale, minting (10,000 sessions take ~10 s here; at most 15 minutes), the
# memory phase (at most ~5.5 minutes, ~1 minute here), then rounds x 7 x duration.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=5
ROUNDS=3
CONNS=32
MEMORY=1
REQUEST=browser
PIN=0
SESSIONS=10000
SESSIONS_GIVEN=
TLS=1
REAL_APPS=0
IDLE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --no-memory) MEMORY=0; shift ;;
    --request) REQUEST="$2"; shift 2 ;;
    --pin) PIN=1; shift ;;
    --sessions) SESSIONS="$2"; SESSIONS_GIVEN=1; shift 2 ;;
    --no-tls) TLS=0; shift ;;
    --real-apps) REAL_APPS=1; shift ;;
    --idle) IDLE="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

EXTRA=()
case "$REQUEST" in
  minimal) ;;
  browser) EXTRA=(
    -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
    -H "Accept-Language: ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7"
    -H "Accept-Encoding: gzip, deflate, br, zstd"
    -H "Upgrade-Insecure-Requests: 1"
    -H "Sec-Fetch-Dest: document"
    -H "Sec-Fetch-Mode: navigate"
    -H "Sec-Fetch-Site: same-origin"
    -H "Referer: http://shop.example/cart"
  ) ;;
  *) echo "--request is browser or minimal" >&2; exit 2 ;;
esac
[[ "$SESSIONS" =~ ^[1-9][0-9]*$ ]] || { echo "--sessions is a positive number" >&2; exit 2; }
# Under callgrind, one session unless --sessions says otherwise (minting is slow under valgrind).
[ -n "${CALLGRIND:-}" ] && [ -z "$SESSIONS_GIVEN" ] && SESSIONS=1
[[ "$IDLE" =~ ^[0-9]+$ ]] || { echo "--idle is a number" >&2; exit 2; }
# The real apps table and the idle connections: 1,000 sessions unless --sessions says otherwise.
if [ "$REAL_APPS" = 1 ] || [ "$IDLE" -gt 0 ]; then
  [ -z "$SESSIONS_GIVEN" ] && SESSIONS=1000
fi

missing=()
PIN_TOOL=()
[ "$PIN" = 1 ] && PIN_TOOL=(taskset nproc)
for tool in cargo curl python3 wrk ${CALLGRIND:+valgrind callgrind_control} "${PIN_TOOL[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)
[ -n "$NGINX" ] || missing+=("nginx")
if [ ${#missing[@]} -gt 0 ]; then
  echo "benches/load.sh: missing ${missing[*]}." >&2
  echo "On Debian/Ubuntu: apt-get install -y ${missing[*]/nginx/nginx-light}" >&2
  exit 2
fi
# The HTTPS and HTTP/2 rounds (not under CALLGRIND or PROFILE, nor with --real-apps or --idle).
if [ -n "${CALLGRIND:-}${PROFILE:-}" ] || [ "$REAL_APPS" = 1 ] || [ "$IDLE" -gt 0 ]; then TLS=0; fi
H2=0
if [ "$TLS" = 1 ]; then
  if ! command -v openssl >/dev/null 2>&1; then
    echo "benches/load.sh: openssl missing (apt-get install -y openssl): no HTTPS or HTTP/2 rounds" >&2
    TLS=0
  elif command -v h2load >/dev/null 2>&1; then
    H2=1
  else
    echo "benches/load.sh: h2load missing (apt-get install -y nghttp2-client): no HTTP/2 rounds" >&2
  fi
fi

# Where each process runs: SUT for the proxy under test, LOADSIDE for everything else.
SUT=()
LOADSIDE=()
if [ "$PIN" = 1 ]; then
  NCPU=$(nproc)
  [ "$NCPU" -ge 2 ] || { echo "--pin needs at least 2 CPUs" >&2; exit 2; }
  SUT=(taskset -c $((NCPU - 1)))
  LOADSIDE=(taskset -c 0-$((NCPU - 2)))
fi

BUILD_PROFILE="${VG_PROFILE:-dist}"
if [ -n "${VG_BIN:-}" ]; then
  BIN="$VG_BIN" # a binary built elsewhere (e.g. an earlier commit's, to compare with)
else
  cargo build --profile "$BUILD_PROFILE" --quiet
  BIN="${CARGO_TARGET_DIR:-target}/$BUILD_PROFILE/verigate"
fi
if [ -n "${BARE_BIN:-}" ]; then
  BARE="$BARE_BIN"
else
  cargo build --profile "$BUILD_PROFILE" --example bare_pingora --quiet
  BARE="${CARGO_TARGET_DIR:-target}/$BUILD_PROFILE/examples/bare_pingora"
fi
BUILD="$(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC')"
if [ -n "${VG_BIN:-}" ]; then
  BUILD="$BUILD, $VG_BIN"
elif REV=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || REV="$REV + uncommitted changes"
  BUILD="$BUILD, from $REV"
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$WORK"/*.pid; do # every nginx's master
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r P_UP P_PROXY P_AUTHED P_AUTH P_VG P_ADMIN P_SB P_VGS P_ADMINS P_BARE < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(10)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)

wait_port() {
  for _ in $(seq 1 300); do
    if curl -s -o /dev/null "http://127.0.0.1:$1${2:-/}"; then return 0; fi
    sleep 0.02
  done
  echo "nothing answers on port $1" >&2; exit 1
}

# Every nginx here runs with the same settings (one worker, no access log), then its own
# servers: start_nginx NAME SERVERS [COMMAND PREFIX...].
start_nginx() {
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/$1.pid;
error_log $WORK/$1/error.log crit;
worker_rlimit_nofile $((2 * IDLE + 8192));
events { worker_connections $((IDLE + 4096)); }
http {
  access_log off;
  keepalive_requests 1000000;
$2
}
EOF
  "${@:3}" "$NGINX" -c "$WORK/$1/nginx.conf" -p "$WORK/$1" 2>/dev/null
}

# The proxies under comparison log alike: verigate's access log (batched, written every
# 100 ms or 64 KiB) and the nginx proxies' (buffered the same way), or neither with
# VG_ACCESS_LOG=false. The upstream app and the auth service never log.
if [ "${VG_ACCESS_LOG:-true}" = true ]; then
  PROXY_LOG="access_log $WORK/front/access.log combined buffer=64k flush=100ms;"
else
  PROXY_LOG="access_log off;"
fi

# The upstream app: a static nginx.
start_nginx up "$(cat <<EOF
  server { listen 127.0.0.1:$P_UP; location / { default_type text/plain; return 200 "hello\n"; } }
EOF
)" "${LOADSIDE[@]}"
# The auth service of the auth_request baseline, in its own process beside the upstream app
# (as oauth2-proxy or an auth API runs beside nginx): the cheapest answer, a static 200.
start_nginx auth "$(cat <<EOF
  server { listen 127.0.0.1:$P_AUTH; location / { return 200; } }
EOF
)" "${LOADSIDE[@]}"
# The nginx baselines: proxy_pass, and auth_request to that auth service.
start_nginx front "$(cat <<EOF
  upstream app { server 127.0.0.1:$P_UP; keepalive 64; }
  upstream auth { server 127.0.0.1:$P_AUTH; keepalive 64; }
  server {
    listen 127.0.0.1:$P_PROXY;
    $PROXY_LOG
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$P_AUTHED;
    $PROXY_LOG
    location = /_auth {
      internal;
      proxy_pass http://auth;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }
    location / {
      auth_request /_auth;
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
    }
  }
EOF
)" "${SUT[@]}"
wait_port "$P_UP"; wait_port "$P_AUTH"; wait_port "$P_PROXY"; wait_port "$P_AUTHED"

# The bare Pingora proxy, one thread like verigate (not under callgrind: its CPU per request
# and requests/s are what the rounds compare).
if [ -z "${CALLGRIND:-}" ]; then
  "${SUT[@]}" "$BARE" "127.0.0.1:$P_BARE" "127.0.0.1:$P_UP" 1 >/dev/null 2>&1 &
  BARE_PID=$!
  PIDS+=($BARE_PID)
  wait_port "$P_BARE"
fi

# The sandbox and verigate (one worker thread, like each nginx).
"${LOADSIDE[@]}" "$BIN" sandbox --listen "127.0.0.1:$P_SB" >/dev/null 2>&1 &
PIDS+=($!)
cat > "$WORK/verigate.yaml" <<EOF
listen: 127.0.0.1:$P_VG
admin_listen: 127.0.0.1:$P_ADMIN
upstream: { addrs: ["127.0.0.1:$P_UP"] }
threads: 1
access_log: ${VG_ACCESS_LOG:-true}
${VG_TUNING:-}
session: { cookie: vg, secure: false, keys_env: BENCH_KEYS, hash_key_env: BENCH_KEYS }
providers:
  iamport:
    imp_code: imp00000000
    api_key_env: BENCH_IMP_KEY
    api_secret_env: BENCH_IMP_SECRET
    base_url: http://127.0.0.1:$P_SB/iamport
    sdk_url: http://127.0.0.1:$P_SB/iamport/js/iamport.js
store: { kind: memory }
# Minting starts every session's flow from one client: the start limits are out of its way.
limits:
  verification_starts:
    per_client: { burst: 1000000, per_minute: 1000000 }
    per_provider: { burst: 1000000, per_minute: 1000000 }
routes:
  - name: gated
    match: { path_prefix: /gated }
    require: { providers: [iamport], age_rule: youth_act, min_age: 19 }
  - name: pass
    match: { path_prefix: / }
EOF
# BENCH_SESSIONS_DIR=dir: the session keys and minted cookies are kept there and taken again by
# the next run that asks for at most as many sessions (minting 10,000 under valgrind takes
# minutes); delete the directory to mint afresh. The sessions stay valid for their lifetime.
REUSE=0
if [ -n "${BENCH_SESSIONS_DIR:-}" ] && [ -s "$BENCH_SESSIONS_DIR/keys" ] &&
  [ "$(wc -l < "$BENCH_SESSIONS_DIR/cookies" 2>/dev/null || echo 0)" -ge "$SESSIONS" ]; then
  REUSE=1
  BENCH_KEYS=$(cat "$BENCH_SESSIONS_DIR/keys")
else
  BENCH_KEYS=$("$BIN" keygen | sed -n 's/^VERIGATE_SESSION_KEYS=//p')
fi
BENCH_KEYS="$BENCH_KEYS" BENCH_IMP_KEY=sandbox_key BENCH_IMP_SECRET=sandbox_secret \
  "${SUT[@]}" ${CALLGRIND:+valgrind --tool=callgrind ${CALLGRIND_CACHE:+--cache-sim=yes --LL=${CALLGRIND_LL:-2097152,16,64}} --callgrind-out-file=$WORK/cg.%p} \
  "$BIN" run -c "$WORK/verigate.yaml" 2>"$WORK/verigate.log" &
VG_PID=$!
PIDS+=($VG_PID)
wait_port "$P_SB" /iamport/js/iamport.js
wait_port "$P_ADMIN" /readyz

# The HTTPS instance: the same config (and keys, so the minted sessions open on it too) with
# TLS on its listener; it idles until its rounds.
if [ "$TLS" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
  sed -e "s/^listen: .*/listen: 127.0.0.1:$P_VGS/" -e "s/^admin_listen: .*/admin_listen: 127.0.0.1:$P_ADMINS/" \
    "$WORK/verigate.yaml" > "$WORK/verigate-tls.yaml"
  echo "tls: { cert_file: $WORK/cert.pem, key_file: $WORK/key.pem }" >> "$WORK/verigate-tls.yaml"
  BENCH_KEYS="$BENCH_KEYS" BENCH_IMP_KEY=sandbox_key BENCH_IMP_SECRET=sandbox_secret \
    "${SUT[@]}" "$BIN" run -c "$WORK/verigate-tls.yaml" 2>"$WORK/verigate-tls.log" &
  VGS_PID=$!
  PIDS+=($VGS_PID)
  wait_port "$P_ADMINS" /readyz
fi

# Real sessions, each minted through the whole sandbox flow (redirect mode), each a distinct
# person; the first 1,000 completions all at once (see benches/mint_sessions.py), or 10 under
# callgrind (a thousand at once time out at the provider under valgrind).
BURST=1000
[ -n "${CALLGRIND:-}" ] && BURST=10
rss() { awk '/VmRSS/ { print $2 }' "/proc/$VG_PID/status"; }
count() { # verified requests verigate let through on the gated route so far
  curl -s "http://127.0.0.1:$P_ADMIN/metrics" |
    awk '/^verigate_requests_total\{decision="passed",route="gated"\}/ { printf "%d", $2 }'
}
if [ "$REUSE" = 1 ]; then
  head -n "$SESSIONS" "$BENCH_SESSIONS_DIR/cookies" > "$WORK/cookies"
  MINTLINE="took $SESSIONS sessions minted earlier from $BENCH_SESSIONS_DIR"
else
  MINTLINE=$("${LOADSIDE[@]}" timeout 900 python3 benches/mint_sessions.py "$P_VG" "$P_SB" "$P_ADMIN" vg \
    "$SESSIONS" "$BURST" "$WORK/cookies") || { echo "could not mint the sessions" >&2; exit 1; }
  if [ -n "${BENCH_SESSIONS_DIR:-}" ]; then
    mkdir -p "$BENCH_SESSIONS_DIR" && chmod 700 "$BENCH_SESSIONS_DIR"
    printf '%s\n' "$BENCH_KEYS" > "$BENCH_SESSIONS_DIR/keys"
    cp "$WORK/cookies" "$BENCH_SESSIONS_DIR/cookies"
  fi
fi
echo "$MINTLINE"
COOKIE=$(head -n1 "$WORK/cookies")
for c in "$COOKIE" "$(tail -n1 "$WORK/cookies")"; do
  CODE=$(curl -s -o /dev/null -w '%{http_code}' "${EXTRA[@]}" -H "Cookie: vg=$c" "http://127.0.0.1:$P_VG/gated/x")
  [ "$CODE" = 200 ] || { echo "a minted session does not pass the gate ($CODE)" >&2; exit 1; }
done
R0=$(rss)

# wrk with the measured requests' bytes (the extra headers and one of the session cookies,
# in turn). A non-2xx answer on any target stops the run (run_wrk).
load() { # duration url [wrk options]
  "${LOADSIDE[@]}" wrk -t1 -c"$CONNS" -d"$1" "${@:3}" "${EXTRA[@]}" -s benches/sessions.lua "$2" \
    -- "$WORK/cookies" vg
}
GATED="http://127.0.0.1:$P_VG/gated/x"

if [ "$REAL_APPS" = 1 ]; then
  # shellcheck source=benches/real_apps.sh
  . benches/real_apps.sh
  exit 0
fi
if [ "$IDLE" -gt 0 ]; then
  # shellcheck source=benches/idle.sh
  . benches/idle.sh
  exit 0
fi

# wrk prints Requests/sec and, with --latency, the 99% line.
# With --pin, also how busy the load side's CPUs were (percent, from /proc/stat). And the CPU
# time per request (from /proc/PID/stat) of the proxy tier (verigate, or the front nginx), the
# auth service (nginx-auth's; idle for the others) and the upstream app: a cost that does not
# depend on how the machine shared its CPUs out during the run.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
ticks() { # pids...: user + system clock ticks, all threads
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
  echo "$t"
}
workers() { pgrep -P "$(cat "$WORK/$1.pid")" | tr '\n' ' '; } # nginx NAME's worker pids
run_wrk() { # name url
  local out before after busy=- proxy up auth p0 u0 a0
  case "$1" in gated|pass) proxy=$VG_PID ;; bare) proxy=$BARE_PID ;; *) proxy=$(workers front) ;; esac
  up=$(workers up); auth=$(workers auth)
  # shellcheck disable=SC2086
  p0=$(ticks $proxy); u0=$(ticks $up); a0=$(ticks $auth)
  before=$(grep '^cpu[0-9]' /proc/stat)
  out=$(load "${DURATION}s" "$2" --latency)
  after=$(grep '^cpu[0-9]' /proc/stat)
  local n
  n=$(echo "$out" | awk '/requests in/ { print $1 }')
  # shellcheck disable=SC2086
  local cpu_proxy=$(( ($(ticks $proxy) - p0) * TICK_US * 100 / n )) cpu_up=$(( ($(ticks $up) - u0) * TICK_US * 100 / n ))
  # shellcheck disable=SC2086
  local cpu_auth=$(( ($(ticks $auth) - a0) * TICK_US * 100 / n ))
  if [ "$PIN" = 1 ]; then
    busy=$(printf '%s\n%s\n' "$before" "$after" | awk -v last="cpu$((NCPU - 1))" '
      $1 != last { t = 0; for (i = 2; i <= NF; i++) t += $i; idle = $5 + $6
                   if ($1 in t0) { dt += t - t0[$1]; di += idle - i0[$1] } else { t0[$1] = t; i0[$1] = idle } }
      END { printf "%.0f", 100 * (dt - di) / dt }')
  fi
  if echo "$out" | grep -q "Non-2xx"; then echo "$1: non-2xx answers:" >&2; echo "$out" >&2; exit 1; fi
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
  p99=$(echo "$out" | awk '$1 == "99%" { print $2 }')
  echo "$1 $rps $p99 $busy $cpu_proxy $cpu_up $cpu_auth" >> "$WORK/results"
}

if [ -n "${CALLGRIND:-}" ]; then
  cat > "$WORK/client.py" <<'PYEOF'
import http.client, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[4])
cookies = [l.strip() for l in open(sys.argv[3]) if l.strip()]
extra = [h.split(": ", 1) for h in sys.argv[5:]]
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    c.request("GET", path, headers={**dict(extra), "Cookie": "vg=" + cookies[i % len(cookies)]})
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"{path}: {r.status}")
PYEOF
  HDRS=()
  for ((i = 1; i < ${#EXTRA[@]}; i += 2)); do HDRS+=("${EXTRA[$i]}"); done
  N=2000
  ROUTES=(gated pass gated pass)
  # Simulating the caches runs ~3x slower: the second pair would come after the session
  # cache's 300 s and meet sessions that are opened again (not what is measured here).
  [ -n "${CALLGRIND_CACHE:-}" ] && ROUTES=(gated pass)
  for route in "${ROUTES[@]}"; do
    # Warm up with one pass over all the sessions: then the measured requests meet only
    # opened sessions, each from verigate's caches.
    python3 "$WORK/client.py" "$P_VG" "/$route/x" "$WORK/cookies" $((SESSIONS > 200 ? SESSIONS : 200)) "${HDRS[@]}"
    callgrind_control -z "$VG_PID" >/dev/null 2>&1
    python3 "$WORK/client.py" "$P_VG" "/$route/x" "$WORK/cookies" "$N" "${HDRS[@]}"
    callgrind_control -d "$route" "$VG_PID" >/dev/null 2>&1
  done
  # Dumps are written asynchronously: wait for all of them.
  for _ in $(seq 1 500); do
    [ "$(grep -lE '^desc: Trigger: .*(gated|pass)$' "$WORK"/cg.* 2>/dev/null | wc -l)" -ge ${#ROUTES[@]} ] && break
    sleep 0.02
  done
  if [ -n "${CALLGRIND_KEEP:-}" ]; then mkdir -p "$CALLGRIND_KEEP" && cp "$WORK"/cg.* "$CALLGRIND_KEEP"/; fi
  python3 - "$N" "$REQUEST" "$SESSIONS" "$WORK"/cg.* <<'PYEOF'
import re, statistics, sys
n, request, sessions = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
per, misses = {}, {}
for f in sys.argv[4:]:
    text = open(f, errors="replace").read()
    trig = re.search(r"^desc: Trigger: .*?(gated|pass)$", text, re.M)
    total = re.search(r"^summary: ([\d ]+)", text, re.M)
    events = re.search(r"^events: (.*)$", text, re.M)
    if trig and total:
        vals = dict(zip(events.group(1).split(), map(int, total.group(1).split())))
        per.setdefault(trig.group(1), []).append(vals["Ir"] / n)
        if "DLmr" in vals:
            misses.setdefault(trig.group(1), []).append(
                ((vals["DLmr"] + vals["DLmw"]) / n, (vals["D1mr"] + vals["D1mw"]) / n))
g, p = statistics.median(per["gated"]), statistics.median(per["pass"])
print(f"instructions per request (callgrind, {request} request headers, {sessions:,} session{'s' if sessions > 1 else ''} in turn, all threads): "
      f"gated {g:,.0f}, pass {p:,.0f}; pass/gated = {p/g:.3f}")
for route in ("gated", "pass"):
    for ll, d1 in misses.get(route, []):
        print(f"  {route}: data misses per request, last-level cache {ll:.1f}, first-level {d1:.1f} (simulated)")
PYEOF
  exit 0
fi

if [ -n "${PROFILE:-}" ]; then
  # PROFILE=out.data: sample verigate (perf, software clock) under gated load, then stop.
  # PROFILE_ROUTE=pass samples the pass-through route instead.
  perf record -e cpu-clock -F 1999 ${PROFILE_CALLS:--g} -p "$VG_PID" -o "$PROFILE" -- sleep "$DURATION" >/dev/null 2>&1 &
  PERF=$!
  load "${DURATION}s" "http://127.0.0.1:$P_VG/${PROFILE_ROUTE:-gated}/x" | grep Requests/sec
  wait "$PERF" || true
  exit 0
fi

# Memory first, before the measured rounds: RSS after the first pass over all the sessions
# (at least 10 thousand verified requests) and after 1 million, or after 5 minutes of load if
# the machine is too slow for a million. (The RSS right after minting is no baseline: what the
# 1,000 simultaneous completions' connections used is returned to the system only later.)
MEMLINE=""
if [ "$MEMORY" = 1 ]; then
  FIRST=$((SESSIONS > 10000 ? SESSIONS : 10000))
  until [ "$(count)" -ge "$FIRST" ]; do load 1s "$GATED" >/dev/null; done
  R10K=$(rss); N10K=$(count)
  UNTIL=$((SECONDS + 300))
  while [ "$(count)" -lt 1000000 ] && [ "$SECONDS" -lt "$UNTIL" ]; do load 5s "$GATED" >/dev/null; done
  R1M=$(rss); N1M=$(count)
  MEMLINE=$(python3 -c "print(f'RSS after {$N10K:,} verified requests: {$R10K/1024:.1f} MiB; after {$N1M:,}: {$R1M/1024:.1f} MiB; ratio {$R1M/$R10K:.3f} (goal <= 1.10)')")
fi

# Warm up, then interleave the measured rounds.
load 1s "$GATED" >/dev/null
load 1s "http://127.0.0.1:$P_PROXY/x" >/dev/null
: > "$WORK/results"
# Every target gets the same request bytes (the session cookie included), so the ratios
# measure the gate's work, not request size.
# Each round starts one target later, so that no target always runs in the same position.
TARGETS=(gated pass bare nginx-proxy nginx-auth)
declare -A URL=([gated]="$GATED" [pass]="http://127.0.0.1:$P_VG/pass/x" [bare]="http://127.0.0.1:$P_BARE/x"
  [nginx-proxy]="http://127.0.0.1:$P_PROXY/x" [nginx-auth]="http://127.0.0.1:$P_AUTHED/x")
for r in $(seq 0 $((ROUNDS - 1))); do
  for i in 0 1 2 3 4; do
    t=${TARGETS[$(((r + i) % 5))]}
    run_wrk "$t" "${URL[$t]}"
  done
done

# Latency without queueing: one connection, one request at a time, gated and pass
# interleaved. At full load the p99 above is mostly time spent waiting behind the other
# connections' requests, so it follows the requests/s; here it is the request's own.
: > "$WORK/latency"
for r in $(seq 0 $((ROUNDS - 1))); do
  for t in $([ $((r % 2)) = 0 ] && echo gated pass || echo pass gated); do
    out=$(load "${DURATION}s" "${URL[$t]}" --latency -c1)
    echo "$t $(echo "$out" | awk '$1 == "50%" || $1 == "99%" { printf "%s ", $2 }')" >> "$WORK/latency"
  done
done

# HTTPS and HTTP/2: gated and pass over HTTPS/1.1 (wrk) and HTTP/2 (h2load) on the TLS
# instance, rounds rotated like the ones above.
if [ "$TLS" = 1 ]; then
  GATEDS="https://127.0.0.1:$P_VGS/gated/x"
  PASSS="https://127.0.0.1:$P_VGS/pass/x"
  CODE=$(curl -sk -o /dev/null -w '%{http_code}' -H "Cookie: vg=$COOKIE" "$GATEDS")
  [ "$CODE" = 200 ] || { echo "a minted session does not pass the HTTPS gate ($CODE)" >&2; exit 1; }
  run_tls() { # name url
    local out n rps p99=- p0
    p0=$(ticks "$VGS_PID")
    case "$1" in
      *-h2)
        out=$("${LOADSIDE[@]}" h2load -D "$DURATION" -c "$CONNS" -t 1 -m 1 "${EXTRA[@]}" \
          -H "Cookie: vg=$COOKIE" "$2" 2>&1)
        n=$(echo "$out" | awk '/^requests:/ { print $8 }')
        rps=$(echo "$out" | awk '/^finished in/ { print $4 }')
        if ! echo "$out" | grep -q "^status codes: $n 2xx"; then
          echo "$1: non-2xx answers:" >&2; echo "$out" >&2; exit 1
        fi
        echo "$out" | grep -q "^Application protocol: h2" || { echo "$1: not HTTP/2:" >&2; echo "$out" >&2; exit 1; }
        ;;
      *)
        out=$(load "${DURATION}s" "$2" --latency)
        if echo "$out" | grep -q "Non-2xx"; then echo "$1: non-2xx answers:" >&2; echo "$out" >&2; exit 1; fi
        n=$(echo "$out" | awk '/requests in/ { print $1 }')
        rps=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
        p99=$(echo "$out" | awk '$1 == "99%" { print $2 }')
        ;;
    esac
    echo "$1 $rps $p99 $(( ($(ticks "$VGS_PID") - p0) * TICK_US * 100 / n ))" >> "$WORK/tls_results"
  }
  TLS_TARGETS=(gated-https pass-https)
  [ "$H2" = 1 ] && TLS_TARGETS+=(gated-h2 pass-h2)
  declare -A TLS_URL=([gated-https]="$GATEDS" [pass-https]="$PASSS" [gated-h2]="$GATEDS" [pass-h2]="$PASSS")
  load 1s "$GATEDS" >/dev/null
  : > "$WORK/tls_results"
  for r in $(seq 0 $((ROUNDS - 1))); do
    for i in $(seq 0 $((${#TLS_TARGETS[@]} - 1))); do
      t=${TLS_TARGETS[$(((r + i) % ${#TLS_TARGETS[@]}))]}
      run_tls "$t" "${TLS_URL[$t]}"
    done
  done
fi

REND=$(rss); NEND=$(count)
PIN="$PIN" REQUEST="$REQUEST" SESSIONS="$SESSIONS" BUILD="$BUILD" \
  python3 - "$WORK/results" "$ROUNDS" "$DURATION" "$CONNS" "$WORK/latency" <<'EOF'
import os, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit): return float(v[:-len(unit)]) * f
    return float(v)
med = statistics.median
T = ("gated", "pass", "bare", "nginx-proxy", "nginx-auth")
rps = {}; p99 = {}; busy = {}; cpu = {}
for name, r, p, b, c, u, a in rows:
    rps.setdefault(name, []).append(float(r)); p99.setdefault(name, []).append(ms(p))
    busy.setdefault(name, []).append(b)
    c, u, a = int(c) / 100, int(u) / 100, int(a) / 100
    # Per round: proxy tier, auth service, upstream app, whole system (their sum).
    cpu.setdefault(name, []).append((c, a, u, c + a + u))
n = len(rps["gated"])
print(f"\n{sys.argv[2]} interleaved rounds of {sys.argv[3]}s, {sys.argv[4]} connections, 1 worker each; "
      f"{int(os.environ['SESSIONS']):,} session{'s' if int(os.environ['SESSIONS']) > 1 else ''} in turn")
print(f"verigate build: {os.environ['BUILD']}")
print(f"request headers: {os.environ.get('REQUEST', 'browser')}")
print(f"access logs (verigate and the nginx proxies): {os.environ.get('VG_ACCESS_LOG', 'true')}; verigate {os.environ.get('VG_TUNING', '') or 'default tuning'}")
pinned = os.environ.get("PIN") == "1"
print("pinned: the proxy alone on the last CPU; wrk, the upstream app and the auth service on the others\n" if pinned else "not pinned\n")
print("| target | requests/s | p99 latency | requests/s, each round | p99, each round |")
print("| --- | ---: | ---: | --- | --- |")
for k in T:
    each_r = " ".join(f"{v/1000:.1f}k" for v in rps[k])
    each_p = " ".join(f"{v:.2f}" for v in p99[k])
    print(f"| {k} | {med(rps[k]):,.0f} | {med(p99[k]):.2f} ms | {each_r} | {each_p} |")
print("\nCPU time per request (us, medians over the rounds; wrk not counted):\n")
print("| target | proxy tier | auth service | upstream app | whole system |")
print("| --- | ---: | ---: | ---: | ---: |")
mc = {k: [med(x[j] for x in cpu[k]) for j in range(4)] for k in T}
for k in T:
    print(f"| {k} | " + " | ".join(f"{v:.1f}" for v in mc[k]) + " |")
if pinned:
    print("\nload-side CPUs busy (%), each round: "
          + "; ".join(f"{k} " + " ".join(busy[k]) for k in T))

def ratio(f, goal=""):
    """The median of the per-round ratios, the ratio of the medians, and each round's."""
    each = [f(i) for i in range(n)]
    return f"{med(each):.3f} (ratio of medians {f(None):.3f}; rounds " + " ".join(f"{e:.2f}" for e in each) + f"){goal}"
def r_(k, i): return med(rps[k]) if i is None else rps[k][i]
def p_(k, i): return med(p99[k]) if i is None else p99[k][i]
def c_(k, j, i): return mc[k][j] if i is None else cpu[k][i][j]
print("\nmedians of the per-round ratios (the targets of one round ran back to back):")
print("requests/s  gated / pass        = " + ratio(lambda i: r_("gated", i) / r_("pass", i), "   goal >= 0.95"))
print("requests/s  gated / bare        = " + ratio(lambda i: r_("gated", i) / r_("bare", i), "   goal >= 0.9"))
print("requests/s  pass / bare         = " + ratio(lambda i: r_("pass", i) / r_("bare", i)))
print("requests/s  bare / nginx-proxy  = " + ratio(lambda i: r_("bare", i) / r_("nginx-proxy", i)))
print("requests/s  gated / nginx-auth  = " + ratio(lambda i: r_("gated", i) / r_("nginx-auth", i), "   goal >= 1.3"))
print("requests/s  gated / nginx-proxy = " + ratio(lambda i: r_("gated", i) / r_("nginx-proxy", i), "   aim 1.0"))
print(f"p99 at {sys.argv[4]} conns, gated / pass = " + ratio(lambda i: p_("gated", i) / p_("pass", i)))
print("CPU per request as capacity (the other's CPU / gated's; above 1: gated is cheaper):")
print("  proxy tier:   pass / gated        = " + ratio(lambda i: c_("pass", 0, i) / c_("gated", 0, i)))
print("  proxy tier:   bare / gated        = " + ratio(lambda i: c_("bare", 0, i) / c_("gated", 0, i)))
print("  proxy tier:   nginx-auth / gated  = " + ratio(lambda i: c_("nginx-auth", 0, i) / c_("gated", 0, i)))
print("  whole system: nginx-auth / gated  = " + ratio(lambda i: c_("nginx-auth", 3, i) / c_("gated", 3, i)))
print("  proxy tier:   nginx-proxy / gated = " + ratio(lambda i: c_("nginx-proxy", 0, i) / c_("gated", 0, i)))
lat1 = {}
for name, p50, p99_ in (l.split() for l in open(sys.argv[5])):
    lat1.setdefault(name, []).append((ms(p50), ms(p99_)))
m50 = {k: med(a for a, _ in v) for k, v in lat1.items()}
m99 = {k: med(b for _, b in v) for k, v in lat1.items()}
each = [g[1] / p[1] for g, p in zip(lat1["gated"], lat1["pass"])]
print(f"\none connection (no queueing): p50 gated {m50['gated']*1000:.0f} us, pass {m50['pass']*1000:.0f} us; "
      f"p99 gated {m99['gated']*1000:.0f} us, pass {m99['pass']*1000:.0f} us")
print(f"p99 gated / pass, one connection = {med(each):.3f} (ratio of medians {m99['gated']/m99['pass']:.3f}; rounds "
      + " ".join(f"{e:.2f}" for e in each) + ")   goal <= 1.10")
EOF

if [ "$TLS" = 1 ]; then
  python3 - "$WORK/tls_results" "$WORK/results" <<'EOF'
import statistics, sys
med = statistics.median
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit): return float(v[:-len(unit)]) * f
    return float(v)
rows = [l.split() for l in open(sys.argv[1])]
rps, p99, cpu = {}, {}, {}
for name, r, p, c in rows:
    rps.setdefault(name, []).append(float(r)); p99.setdefault(name, []).append(p)
    cpu.setdefault(name, []).append(int(c) / 100)
plain = {}
for l in open(sys.argv[2]):
    f = l.split()
    plain.setdefault(f[0], []).append(float(f[1]))
print("\nHTTPS (HTTP/1.1, wrk, the cycling sessions) and HTTP/2 (h2load, one session, one stream per "
      "connection), the same connection count, rounds of their own:\n")
print("| target | requests/s | p99 latency (wrk) | verigate CPU per request (us) | requests/s, each round |")
print("| --- | ---: | ---: | ---: | --- |")
for k in ("gated-https", "pass-https", "gated-h2", "pass-h2"):
    if k in rps:
        lat = f"{med(ms(v) for v in p99[k]):.2f} ms" if p99[k][0] != "-" else "-"
        print(f"| {k} | {med(rps[k]):,.0f} | {lat} | {med(cpu[k]):.1f} | "
              + " ".join(f"{v/1000:.1f}k" for v in rps[k]) + " |")
def ratio(a, b, what, goal=""):
    each = [x / y for x, y in zip(what[a], what[b])]
    return f"{med(each):.3f} (rounds " + " ".join(f"{e:.2f}" for e in each) + f"){goal}"
print()
for proto in ("https", "h2"):
    g, p = f"gated-{proto}", f"pass-{proto}"
    if g in rps:
        print(f"requests/s  {g} / {p} = " + ratio(g, p, rps, "   goal >= 0.95"))
        print(f"CPU per request, {p} / {g} = " + ratio(p, g, cpu))
if "gated" in plain and "gated-https" in rps:
    print(f"requests/s, medians: gated-https / gated (the plain HTTP/1.1 rounds above) = "
          f"{med(rps['gated-https']) / med(plain['gated']):.3f}"
          + (f"; gated-h2 / gated = {med(rps['gated-h2']) / med(plain['gated']):.3f}" if "gated-h2" in rps else ""))
EOF
fi
[ -n "$MEMLINE" ] && echo "$MEMLINE"
python3 -c "print(f'RSS after minting {$SESSIONS:,} session{\"s\" if $SESSIONS > 1 else \"\"}: {$R0/1024:.1f} MiB; at the end of the run, after {$NEND:,} verified requests: {$REND/1024:.1f} MiB' + (f'; end / first pass = {$REND/${R10K:-0}:.3f}' if ${R10K:-0} else ''))"
