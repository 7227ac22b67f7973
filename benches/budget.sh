#!/usr/bin/env bash
# The instruction budget CI enforces (docs/dev/budget.md): verigate runs under valgrind's
# callgrind and the instructions one request costs are counted for four requests, each on a
# kept-alive connection with a real session cookie (minted through the sandbox's Iamport flow):
#   gated-browser  a gated route, the headers of a Chrome page navigation
#   gated-minimal  a gated route, only Host and the cookie
#   pass-browser   a pass-through route (no `require`), the browser headers
#   pass-minimal   a pass-through route, only Host and the cookie
# Each count is compared with benches/budget.toml: more than 3% over its budget fails the run
# (exit 1), more than 3% under it prints a hint to lower the budget.
#
# What is counted: every instruction verigate's process executes (all its threads: Pingora,
# Tokio, the gate's phases, the access log's flusher) between two callgrind triggers around
# N requests, divided by N. The upstream app, the sandbox and the client run outside valgrind.
# A count does not move with the machine's load, unlike requests/s; it moves by a fraction of
# a percent between runs (timers, hash seeds), far under the 3% tolerance.
#
# Build profile: `release` (opt-level 1, no LTO). The counts it gives are ~1.3x those of the
# deployment build (`dist`: opt-level 3, fat LTO), but they move the same way when per-request
# work is added or removed, which is all a budget needs; `release` builds in ~5 CPU-minutes on
# warm dependencies where `dist`'s single fat-LTO codegen unit takes several times that, and
# CI's headroom is ~15 minutes. BUDGET_PROFILE=dist counts the deployment build instead (its
# figures are not the budget file's). BUDGET_BIN=path counts that binary as it is (no build).
#
# Besides each count it prints verigate's own phases (request_filter + upstream_request_filter
# + logging, inclusive, from callgrind_annotate) for each request kind, and what every phase
# of the gate costs together (upstream_peer, connected_to_upstream, the response filters, ...).
#
# Usage: benches/budget.sh [--update] [--requests N] [--bare]
#   --update      write the measured counts into benches/budget.toml (after a change that
#                 earns it; see docs/dev/budget.md for when raising is allowed)
#   --requests N  measured requests per count (default 1000)
#   --bare        also count a bare Pingora proxy (benches/bare_pingora.rs, the same profile,
#                 no filters) on the same requests and print gated / bare and pass / bare:
#                 what verigate's own layer adds to the engine, in instructions. Not budgeted.
# Needs: cargo, python3 (3.11+, for tomllib), valgrind (callgrind_control), curl.
set -euo pipefail
cd "$(dirname "$0")/.."

UPDATE=0
BARE=0
N=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --update) UPDATE=1; shift ;;
    --requests) N="$2"; shift 2 ;;
    --bare) BARE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "--requests is a positive number" >&2; exit 2; }

missing=()
for tool in cargo python3 valgrind callgrind_control curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "benches/budget.sh: missing ${missing[*]} (Debian: apt-get install -y valgrind curl python3)" >&2
  exit 2
fi

BUDGET_FILE=benches/budget.toml
PROFILE="${BUDGET_PROFILE:-release}"
if [ -n "${BUDGET_BIN:-}" ]; then
  BIN="$BUDGET_BIN"
else
  cargo build --profile "$PROFILE" --bin verigate --locked --quiet
  BIN="${CARGO_TARGET_DIR:-target}/$PROFILE/verigate"
fi
if [ "$BARE" = 1 ]; then
  if [ -n "${BUDGET_BARE_BIN:-}" ]; then
    BARE_BIN="$BUDGET_BARE_BIN"
  else
    cargo build --profile "$PROFILE" --example bare_pingora --locked --quiet
    BARE_BIN="${CARGO_TARGET_DIR:-target}/$PROFILE/examples/bare_pingora"
  fi
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r P_UP P_VG P_ADMIN P_SB P_BARE < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)

wait_port() { # port [path]: at most ~60 s (verigate starts slowly under valgrind)
  for _ in $(seq 1 600); do
    curl -s -o /dev/null "http://127.0.0.1:$1${2:-/}" && return 0
    sleep 0.1
  done
  echo "benches/budget.sh: nothing answers on port $1" >&2
  [ -f "$WORK/verigate.log" ] && tail -n 20 "$WORK/verigate.log" >&2
  exit 1
}

# The upstream app: a static 200 over HTTP/1.1 keep-alive (its own cost is not counted).
cat > "$WORK/upstream.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"hello\n")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$WORK/upstream.py" "$P_UP" &
PIDS+=($!)
"$BIN" sandbox --listen "127.0.0.1:$P_SB" >/dev/null 2>&1 &
PIDS+=($!)

# The reference config: one gated route (Iamport, an age rule), one pass-through route, the
# access log on (as deployed), one worker thread, the defaults for everything else.
cat > "$WORK/verigate.yaml" <<EOF
listen: 127.0.0.1:$P_VG
admin_listen: 127.0.0.1:$P_ADMIN
upstream: { addrs: ["127.0.0.1:$P_UP"] }
threads: 1
access_log: true
session: { cookie: vg, secure: false, keys_env: BUDGET_KEYS, hash_key_env: BUDGET_KEYS }
providers:
  iamport:
    imp_code: imp00000000
    api_key_env: BUDGET_IMP_KEY
    api_secret_env: BUDGET_IMP_SECRET
    base_url: http://127.0.0.1:$P_SB/iamport
    sdk_url: http://127.0.0.1:$P_SB/iamport/js/iamport.js
store: { kind: memory }
routes:
  - name: gated
    match: { path_prefix: /gated }
    require: { providers: [iamport], min_age: 19, age_rule: youth_act }
  - name: pass
    match: { path_prefix: / }
EOF
BUDGET_KEYS=$("$BIN" keygen | sed -n 's/^VERIGATE_SESSION_KEYS=//p')
BUDGET_KEYS="$BUDGET_KEYS" BUDGET_IMP_KEY=sandbox_key BUDGET_IMP_SECRET=sandbox_secret \
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" \
  "$BIN" run -c "$WORK/verigate.yaml" >"$WORK/access.log" 2>"$WORK/verigate.log" &
VG_PID=$!
PIDS+=($VG_PID)
wait_port "$P_SB" /iamport/js/iamport.js
wait_port "$P_ADMIN" /readyz

# One real session, issued by verigate at the end of the sandbox's flow.
python3 benches/mint_sessions.py "$P_VG" "$P_SB" "$P_ADMIN" vg 1 1 "$WORK/cookies" >/dev/null ||
  { echo "benches/budget.sh: could not mint a session" >&2; exit 1; }

# The client: requests on one kept-alive connection; every answer must be a 200.
cat > "$WORK/client.py" <<'EOF'
import http.client, sys
port, path, n, kind = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
cookie = open(sys.argv[5]).readline().strip()
browser = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "Accept-Language": "ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7",
    "Accept-Encoding": "gzip, deflate, br, zstd",
    "Upgrade-Insecure-Requests": "1",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Site": "same-origin",
    "Referer": "http://shop.example/cart",
}
headers = {**(browser if kind == "browser" else {}), "Cookie": "vg=" + cookie}
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    # skip_accept_encoding: http.client's own Accept-Encoding would be a header more.
    c.putrequest("GET", path, skip_accept_encoding=True)
    for k, v in headers.items():
        c.putheader(k, v)
    c.endheaders()
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"{path} ({kind}): {r.status}")
EOF

# count PID PORT PATH KIND NAME: N requests counted into a dump named NAME, after a warm-up
# (the session opened and cached, the upstream connection pooled).
count() {
  python3 "$WORK/client.py" "$2" "$3" 50 "$4" "$WORK/cookies"
  callgrind_control -z "$1" >/dev/null 2>&1
  python3 "$WORK/client.py" "$2" "$3" "$N" "$4" "$WORK/cookies"
  callgrind_control -d "$5" "$1" >/dev/null 2>&1
}
CASES=(gated-browser gated-minimal pass-browser pass-minimal)
for case in "${CASES[@]}"; do
  count "$VG_PID" "$P_VG" "/${case%-*}/x" "${case#*-}" "$case"
done
DUMPS=4
if [ "$BARE" = 1 ]; then
  # The bare proxy in front of the same app, on the same requests (no session: it reads none).
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" \
    "$BARE_BIN" "127.0.0.1:$P_BARE" "127.0.0.1:$P_UP" 1 >"$WORK/bare.log" 2>&1 &
  BARE_PID=$!
  PIDS+=($BARE_PID)
  wait_port "$P_BARE" /
  for kind in browser minimal; do
    count "$BARE_PID" "$P_BARE" /bare/x "$kind" "bare-$kind"
  done
  DUMPS=6
fi
# Dumps are written asynchronously: wait for all of them (at most ~30 s).
for _ in $(seq 1 300); do
  [ "$(grep -lE '^desc: Trigger: .*(browser|minimal)$' "$WORK"/cg.* 2>/dev/null | wc -l)" -ge "$DUMPS" ] && break
  sleep 0.1
done
[ -n "${BUDGET_KEEP:-}" ] && mkdir -p "$BUDGET_KEEP" && cp "$WORK"/cg.* "$BUDGET_KEEP"/

python3 - "$N" "$BUDGET_FILE" "$UPDATE" "$PROFILE" "$WORK"/cg.* <<'EOF'
import re, sys, tomllib
n, budget_file, update, profile = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4]
import subprocess
counts, phases = {}, {}
PHASES = ("request_filter", "upstream_request_filter", "logging")
for f in sys.argv[5:]:
    text = open(f, errors="replace").read()
    trig = re.search(r"^desc: Trigger: .*?((gated|pass|bare)-(browser|minimal))$", text, re.M)
    total = re.search(r"^summary: (\d+)", text, re.M)
    if trig and total:
        counts[trig.group(1)] = int(total.group(1)) / n
        if trig.group(2) == "bare":
            continue
        # verigate's own phases, inclusive (what each Pingora phase of the Gate costs).
        out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", f],
                             capture_output=True, text=True).stdout
        # Every phase of the Gate (the async ones twice: making the future, polling it). A
        # build with debug info lists a function once per source file its inlined code came
        # from: the largest of those lines is the function's inclusive count.
        seen = {}
        for m in re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+(?:\S*?:)?<verigate::gate::Gate as "
                             r"pingora_proxy::proxy_trait::ProxyHttp>::(\w+)(::\{\{closure\}\})?\s",
                             out, re.M):
            key = (m.group(2), bool(m.group(3)))
            seen[key] = max(seen.get(key, 0.0), int(m.group(1).replace(",", "")) / n)
        own = {p: seen.get((p, True), 0.0) for p in PHASES}
        own["all"] = sum(seen.values())
        phases[trig.group(1)] = own
cases = ("gated-browser", "gated-minimal", "pass-browser", "pass-minimal")
missing = [c for c in cases if c not in counts]
if missing:
    sys.exit(f"benches/budget.sh: no count for {', '.join(missing)} (callgrind dumps missing)")
print(f"instructions per request (callgrind, {profile} build, {n} requests each):")
def own_phases():
    print("verigate's own phases (request_filter + upstream_request_filter + logging):")
    for c in cases:
        o = phases.get(c, {})
        print(f"  {c:14} {sum(o.get(p, 0) for p in PHASES):>9,.0f}  ("
              + " + ".join(f"{o.get(p, 0):,.0f}" for p in PHASES)
              + f");  every phase of the gate {o.get('all', 0):,.0f}")
    if "bare-browser" in counts and "bare-minimal" in counts:
        print("a bare Pingora proxy on the same requests (benches/bare_pingora.rs):")
        for kind in ("browser", "minimal"):
            b = counts["bare-" + kind]
            print(f"  bare-{kind:8} {b:>9,.0f}   gated / bare {counts['gated-' + kind] / b:.3f}"
                  f"   pass / bare {counts['pass-' + kind] / b:.3f}"
                  f"   (bare / gated {b / counts['gated-' + kind]:.3f})")
import atexit
atexit.register(own_phases)
if update:
    lines = open(budget_file).read().splitlines(keepends=True)
    out = []
    for line in lines:
        m = re.match(r'^"?((gated|pass)-(browser|minimal))"?\s*=', line)
        out.append(f'"{m.group(1)}" = {round(counts[m.group(1)])}\n' if m else line)
    open(budget_file, "w").write("".join(out))
    for c in cases:
        print(f"  {c:14} {counts[c]:>9,.0f}  (written to {budget_file})")
    sys.exit(0)
budget = tomllib.load(open(budget_file, "rb"))
if profile != "release":
    for c in cases:
        print(f"  {c:14} {counts[c]:>9,.0f}  (the budget is for the release build: not compared)")
    sys.exit(0)
failed = False
for c in cases:
    b = budget.get(c)
    if not isinstance(b, (int, float)) or b <= 0:
        print(f"  {c:14} {counts[c]:>9,.0f}  no budget in {budget_file}")
        failed = True
        continue
    pct = (counts[c] - b) / b * 100
    verdict = "ok"
    if pct > 3:
        verdict = "OVER BUDGET"
        failed = True
    elif pct < -3:
        verdict = "under budget: lower it (benches/budget.sh --update)"
    print(f"  {c:14} {counts[c]:>9,.0f}  budget {b:>9,}  {pct:+6.1f}%  {verdict}")
if failed:
    print("\nFAILED: a request costs more than 3% over its budget in benches/budget.toml (or has none).\n"
          "Find the cost (docs/dev/budget.md: callgrind_annotate on BUDGET_KEEP's dumps) and win it\n"
          "back; raise a budget only as docs/dev/budget.md allows.", file=sys.stderr)
    sys.exit(1)
EOF
