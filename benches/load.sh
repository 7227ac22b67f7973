#!/usr/bin/env bash
# Load comparison, all on loopback, in one run on one machine:
#   gated        verigate, a verified request on a gated route (cookie open, match, strip, inject)
#   pass         verigate's own pass-through route (no `require`)
#   nginx-proxy  plain nginx proxy_pass to the same upstream
#   nginx-auth   nginx auth_request to the cheapest auth backend (a static 200), then proxy_pass
# The upstream is a static nginx. Rounds are interleaved; medians and ratios are printed.
# Then latency without queueing: gated and pass over one connection, one request at a time.
# Then: RSS after 10 thousand and after 1 million verified requests, and the Iamport token
# fetches for 1,000 concurrent completions.
#
# Usage: benches/load.sh [--duration SECONDS] [--rounds N] [--connections C] [--no-memory]
#                        [--request browser|minimal] [--pin]
# --pin: the proxy under test (verigate, or the front nginx) runs alone on the last CPU; wrk,
# the upstream nginx and the sandbox share the others. Each round then also prints how busy
# the load side's CPUs were: near 100% means the load side, not the proxy, set the pace.
# --request: the headers every measured request carries besides the session cookie: `browser`
# (the default) those of a Chrome page navigation, `minimal` only Host (wrk's bare request).
# Variants: VG_ACCESS_LOG=false (no access log on verigate nor on the nginx proxies),
# VG_TUNING='tuning: { work_stealing: true }'.
# CALLGRIND=1: run verigate under valgrind's callgrind instead and count the instructions one
# request costs on each verigate route (2,000 sequential requests each, twice): a figure that
# does not move with the machine's load, unlike requests/s. Needs valgrind.
# CALLGRIND_KEEP=dir keeps the callgrind dumps there, for callgrind_annotate.
# Needs: cargo, curl, python3, wrk, nginx (Debian: apt-get install wrk nginx-light curl).
# It installs nothing: it says what is missing and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=5
ROUNDS=3
CONNS=32
MEMORY=1
REQUEST=browser
PIN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --no-memory) MEMORY=0; shift ;;
    --request) REQUEST="$2"; shift 2 ;;
    --pin) PIN=1; shift ;;
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

# Where each process runs: SUT for the proxy under test, LOADSIDE for everything else.
SUT=()
LOADSIDE=()
if [ "$PIN" = 1 ]; then
  NCPU=$(nproc)
  [ "$NCPU" -ge 2 ] || { echo "--pin needs at least 2 CPUs" >&2; exit 2; }
  SUT=(taskset -c $((NCPU - 1)))
  LOADSIDE=(taskset -c 0-$((NCPU - 2)))
fi

cargo build --release --quiet
BIN=target/release/verigate
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/up.pid" ] && kill "$(cat "$WORK/up.pid")" 2>/dev/null || true
  [ -f "$WORK/front.pid" ] && kill "$(cat "$WORK/front.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r P_UP P_PROXY P_AUTHED P_AUTH P_VG P_ADMIN P_SB < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(7)]
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
events { worker_connections 4096; }
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
# VG_ACCESS_LOG=false. The upstream app and the auth backend never log.
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
# The nginx baselines: proxy_pass, and auth_request to a static-200 auth backend.
start_nginx front "$(cat <<EOF
  upstream app { server 127.0.0.1:$P_UP; keepalive 64; }
  upstream auth { server 127.0.0.1:$P_AUTH; keepalive 64; }
  server { listen 127.0.0.1:$P_AUTH; location / { return 200; } }
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
wait_port "$P_UP"; wait_port "$P_PROXY"; wait_port "$P_AUTHED"

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
routes:
  - name: gated
    match: { path_prefix: /gated }
    require: { providers: [iamport], min_age: 19 }
  - name: pass
    match: { path_prefix: / }
EOF
BENCH_KEYS=$("$BIN" keygen | sed -n 's/^VERIGATE_SESSION_KEYS=//p')
BENCH_KEYS="$BENCH_KEYS" BENCH_IMP_KEY=sandbox_key BENCH_IMP_SECRET=sandbox_secret \
  "${SUT[@]}" ${CALLGRIND:+valgrind --tool=callgrind --callgrind-out-file=$WORK/cg.%p} \
  "$BIN" run -c "$WORK/verigate.yaml" 2>"$WORK/verigate.log" &
VG_PID=$!
PIDS+=($VG_PID)
wait_port "$P_SB" /iamport/js/iamport.js
wait_port "$P_ADMIN" /readyz

# A real session, minted through the sandbox flow (redirect mode).
JAR="$WORK/jar"
curl -s -c "$JAR" -H 'Accept: text/html' \
  "http://127.0.0.1:$P_VG/.verigate/iamport/start?return_to=%2Fgated" > "$WORK/start.html"
python3 - "$WORK/start.html" > "$WORK/form" <<'EOF'
import json, re, sys, urllib.parse
html = open(sys.argv[1]).read()
flow = json.loads(re.search(r'<script id="verigate-flow" type="application/json">(.*?)</script>', html, re.S).group(1))
print(urllib.parse.urlencode({"imp_code": flow["imp_code"], "merchant_uid": flow["merchant_uid"],
      "m_redirect_url": flow["m_redirect_url"], "name": "Bench Person", "birth": "19900101",
      "gender": "female", "phone": "01000000000", "carrier": "SKT", "foreigner": "false"}))
EOF
BACK=$(curl -s -o /dev/null -w '%{redirect_url}' -d @"$WORK/form" "http://127.0.0.1:$P_SB/iamport/certify")
curl -s -o /dev/null -b "$JAR" -c "$JAR" -H 'Accept: text/html' "$BACK"
COOKIE=$(awk '$6 == "vg" { print $7 }' "$JAR")
[ -n "$COOKIE" ] || { echo "could not mint a session" >&2; exit 1; }
CODE=$(curl -s -o /dev/null -w '%{http_code}' "${EXTRA[@]}" -H "Cookie: vg=$COOKIE" "http://127.0.0.1:$P_VG/gated/x")
[ "$CODE" = 200 ] || { echo "the minted session does not pass the gate ($CODE)" >&2; exit 1; }

# wrk with the measured request's bytes (the extra headers and the session cookie).
load() { # duration url [wrk options]
  "${LOADSIDE[@]}" wrk -t1 -c"$CONNS" -d"$1" "${@:3}" "${EXTRA[@]}" -H "Cookie: vg=$COOKIE" "$2"
}
GATED="http://127.0.0.1:$P_VG/gated/x"

# wrk prints Requests/sec and, with --latency, the 99% line.
# With --pin, also how busy the load side's CPUs were (percent, from /proc/stat). And the CPU
# time the proxy and the upstream app spent per request (from /proc/PID/stat): a cost that
# does not depend on how the machine shared its CPUs out during the run.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
ticks() { # pids...: user + system clock ticks, all threads
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
  echo "$t"
}
workers() { pgrep -P "$(cat "$WORK/$1.pid")" | tr '\n' ' '; } # nginx NAME's worker pids
run_wrk() { # name url
  local out before after busy=- proxy up p0 u0
  case "$1" in gated|pass) proxy=$VG_PID ;; *) proxy=$(workers front) ;; esac
  up=$(workers up)
  # shellcheck disable=SC2086
  p0=$(ticks $proxy); u0=$(ticks $up)
  before=$(grep '^cpu[0-9]' /proc/stat)
  out=$(load "${DURATION}s" "$2" --latency)
  after=$(grep '^cpu[0-9]' /proc/stat)
  local n
  n=$(echo "$out" | awk '/requests in/ { print $1 }')
  # shellcheck disable=SC2086
  local cpu_proxy=$(( ($(ticks $proxy) - p0) * TICK_US * 100 / n )) cpu_up=$(( ($(ticks $up) - u0) * TICK_US * 100 / n ))
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
  echo "$1 $rps $p99 $busy $cpu_proxy $cpu_up" >> "$WORK/results"
}

if [ -n "${CALLGRIND:-}" ]; then
  cat > "$WORK/client.py" <<'PYEOF'
import http.client, sys
port, path, cookie, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
extra = [h.split(": ", 1) for h in sys.argv[5:]]
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("GET", path, headers={**dict(extra), "Cookie": "vg=" + cookie})
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"{path}: {r.status}")
PYEOF
  HDRS=()
  for ((i = 1; i < ${#EXTRA[@]}; i += 2)); do HDRS+=("${EXTRA[$i]}"); done
  N=2000
  for route in gated pass gated pass; do
    python3 "$WORK/client.py" "$P_VG" "/$route/x" "$COOKIE" 200 "${HDRS[@]}"
    callgrind_control -z "$VG_PID" >/dev/null 2>&1
    python3 "$WORK/client.py" "$P_VG" "/$route/x" "$COOKIE" "$N" "${HDRS[@]}"
    callgrind_control -d "$route" "$VG_PID" >/dev/null 2>&1
  done
  # Dumps are written asynchronously: wait for all four.
  for _ in $(seq 1 500); do
    [ "$(grep -lE '^desc: Trigger: .*(gated|pass)$' "$WORK"/cg.* 2>/dev/null | wc -l)" -ge 4 ] && break
    sleep 0.02
  done
  if [ -n "${CALLGRIND_KEEP:-}" ]; then mkdir -p "$CALLGRIND_KEEP" && cp "$WORK"/cg.* "$CALLGRIND_KEEP"/; fi
  python3 - "$N" "$REQUEST" "$WORK"/cg.* <<'PYEOF'
import re, statistics, sys
n, request = int(sys.argv[1]), sys.argv[2]
per = {}
for f in sys.argv[3:]:
    text = open(f, errors="replace").read()
    trig = re.search(r"^desc: Trigger: .*?(gated|pass)$", text, re.M)
    total = re.search(r"^summary: (\d+)", text, re.M)
    if trig and total:
        per.setdefault(trig.group(1), []).append(int(total.group(1)) / n)
g, p = statistics.median(per["gated"]), statistics.median(per["pass"])
print(f"instructions per request (callgrind, {request} request headers, all threads): "
      f"gated {g:,.0f}, pass {p:,.0f}; pass/gated = {p/g:.3f}")
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

# Memory first, on a fresh process: RSS after 10 thousand and after 1 million verified requests.
MEMLINE=""
if [ "$MEMORY" = 1 ]; then
  count() { curl -s "http://127.0.0.1:$P_ADMIN/metrics" | awk '/^verigate_requests_total\{decision="passed",route="gated"\}/ { print $2 }'; }
  rss() { awk '/VmRSS/ { print $2 }' "/proc/$VG_PID/status"; }
  until [ "$(count)" -ge 10000 ]; do load 1s "$GATED" >/dev/null; done
  R10K=$(rss); N10K=$(count)
  while [ "$(count)" -lt 1000000 ]; do load 5s "$GATED" >/dev/null; done
  R1M=$(rss); N1M=$(count)
  MEMLINE=$(python3 -c "print(f'RSS after {int(float($N10K)):,} verified requests: {$R10K/1024:.1f} MiB; after {int(float($N1M)):,}: {$R1M/1024:.1f} MiB; ratio {$R1M/$R10K:.3f} (goal <= 1.10)')")
fi

# Warm up, then interleave the measured rounds.
load 1s "$GATED" >/dev/null
load 1s "http://127.0.0.1:$P_PROXY/x" >/dev/null
: > "$WORK/results"
# Every target gets the same request bytes (the session cookie included), so the ratios
# measure the gate's work, not request size.
# Each round starts one target later, so that no target always runs in the same position.
TARGETS=(gated pass nginx-proxy nginx-auth)
declare -A URL=([gated]="$GATED" [pass]="http://127.0.0.1:$P_VG/pass/x"
  [nginx-proxy]="http://127.0.0.1:$P_PROXY/x" [nginx-auth]="http://127.0.0.1:$P_AUTHED/x")
for r in $(seq 0 $((ROUNDS - 1))); do
  for i in 0 1 2 3; do
    t=${TARGETS[$(((r + i) % 4))]}
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

PIN="$PIN" REQUEST="$REQUEST" python3 - "$WORK/results" "$ROUNDS" "$DURATION" "$CONNS" "$WORK/latency" <<'EOF'
import statistics, sys
import os
rows = [l.split() for l in open(sys.argv[1])]
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit): return float(v[:-len(unit)]) * f
    return float(v)
rps = {}; p99 = {}; busy = {}; cpu = {}; cpu_up = {}
for name, r, p, b, c, u in rows:
    cpu.setdefault(name, []).append(int(c) / 100); cpu_up.setdefault(name, []).append(int(u) / 100)
    rps.setdefault(name, []).append(float(r)); p99.setdefault(name, []).append(ms(p))
    busy.setdefault(name, []).append(b)
med = {k: statistics.median(v) for k, v in rps.items()}
lat = {k: statistics.median(v) for k, v in p99.items()}
import os
print(f"\n{sys.argv[2]} interleaved rounds of {sys.argv[3]}s, {sys.argv[4]} connections, 1 worker each; medians")
print(f"request headers: {os.environ.get('REQUEST', 'browser')}")
print(f"access logs (verigate and the nginx proxies): {os.environ.get('VG_ACCESS_LOG', 'true')}; verigate {os.environ.get('VG_TUNING', '') or 'default tuning'}")
pinned = os.environ.get("PIN") == "1"
print("pinned: the proxy alone on the last CPU, wrk and the upstream on the others\n" if pinned else "not pinned\n")
print(f"| target | requests/s | p99 latency | requests/s, each round | p99, each round |")
print(f"| --- | ---: | ---: | --- | --- |")
for k in ("gated", "pass", "nginx-proxy", "nginx-auth"):
    each_r = " ".join(f"{v/1000:.1f}k" for v in rps[k])
    each_p = " ".join(f"{v:.2f}" for v in p99[k])
    print(f"| {k} | {med[k]:,.0f} | {lat[k]:.2f} ms | {each_r} | {each_p} |")
mc = {k: statistics.median(v) for k, v in cpu.items()}
mu = {k: statistics.median(v) for k, v in cpu_up.items()}
print("\nCPU time per request (us, median), the proxy / the upstream app: "
      + "; ".join(f"{k} {mc[k]:.1f} / {mu[k]:.1f}" for k in ("gated", "pass", "nginx-proxy", "nginx-auth")))
print(f"proxy CPU per request, pass / gated = {mc['pass']/mc['gated']:.3f}; gated / nginx-auth = {mc['nginx-auth']/mc['gated']:.3f} (as capacity: higher is better for gated)")
if pinned:
    print("\nload-side CPUs busy (%), each round: "
          + "; ".join(f"{k} " + " ".join(busy[k]) for k in ("gated", "pass", "nginx-proxy", "nginx-auth")))
print()
print(f"gated / pass          = {med['gated']/med['pass']:.3f}   (goal >= 0.95)")
print(f"gated / nginx-auth    = {med['gated']/med['nginx-auth']:.3f}   (goal >= 1.3)")
print(f"gated / nginx-proxy   = {med['gated']/med['nginx-proxy']:.3f}   (aim: 1.0)")
print(f"p99 gated / pass      = {lat['gated']/lat['pass']:.3f}   (at {sys.argv[4]} connections)")
# Ratios within each round (the targets of one round ran back to back).
per = [(rps['gated'][i]/rps['pass'][i], rps['gated'][i]/rps['nginx-auth'][i], p99['gated'][i]/p99['pass'][i])
       for i in range(len(rps['gated']))]
print(f"median of the per-round ratios: gated/pass {statistics.median(a for a, _, _ in per):.3f}, "
      f"gated/nginx-auth {statistics.median(b for _, b, _ in per):.3f}, "
      f"p99 gated/pass {statistics.median(c for _, _, c in per):.3f}")
lat1 = {}
for name, p50, p99_ in (l.split() for l in open(sys.argv[5])):
    lat1.setdefault(name, []).append((ms(p50), ms(p99_)))
m50 = {k: statistics.median(a for a, _ in v) for k, v in lat1.items()}
m99 = {k: statistics.median(b for _, b in v) for k, v in lat1.items()}
print(f"one connection (no queueing): p50 gated {m50['gated']*1000:.0f} us, pass {m50['pass']*1000:.0f} us; "
      f"p99 gated {m99['gated']*1000:.0f} us, pass {m99['pass']*1000:.0f} us")
print(f"p99 gated / pass, one connection = {m99['gated']/m99['pass']:.3f}   (goal <= 1.10); each round "
      + " ".join(f"{g[1]/p[1]:.2f}" for g, p in zip(lat1['gated'], lat1['pass'])))
print("per round: gated/pass " + " ".join(f"{a:.2f}" for a, _, _ in per)
      + "; gated/nginx-auth " + " ".join(f"{b:.2f}" for _, b, _ in per)
      + "; p99 gated/pass " + " ".join(f"{c:.2f}" for _, _, c in per))
EOF

[ -n "$MEMLINE" ] && echo "$MEMLINE"
