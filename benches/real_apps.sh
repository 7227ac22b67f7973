# The "real apps" table of benches/load.sh (`--real-apps`); sourced by load.sh after the
# sessions are minted, with its variables (WORK, BIN, SUT, LOADSIDE, EXTRA, PIDS, ...) and
# functions (start_nginx, wait_port, load).
#
# Real app servers, each behind its own verigate (one thread) and behind one nginx proxy with
# upstream keep-alive (one worker), all on loopback:
#   python-http.server  the standard library's http.server, HTTP/1.1 keep-alive, threaded:
#                       headers and body in two sends, Nagle on (benches/apps/http_server_app.py)
#   gunicorn-sync       Flask on gunicorn's sync worker (one worker; it closes every connection)
#   gunicorn-gthread    Flask on gunicorn's gthread worker (one worker, 4 threads; keep-alive)
#   node-http           Node's `http` module (benches/apps/node_app.js)
#   nginx-static        a static file from nginx (one worker)
# Each app is measured direct, through verigate gated (a verified request), through verigate
# pass and through nginx keep-alive (proxy_pass, `keepalive 64`): p50 and p99 over one
# connection (one request at a time) and at --connections (requests/s too). Rounds rotate the
# order of the targets; the script prints the medians and the medians of the per-round
# differences and ratios.

ALL_APPS=(python-http.server gunicorn-sync gunicorn-gthread node-http nginx-static)
# RA_APPS="gunicorn-gthread node-http": measure only these (every app still starts).
read -r -a APPS <<< "${RA_APPS:-${ALL_APPS[*]}}"
for a in "${APPS[@]}"; do
  [[ " ${ALL_APPS[*]} " == *" $a "* ]] || { echo "RA_APPS: no app $a (${ALL_APPS[*]})" >&2; exit 2; }
done
RA_DURATION=${RA_DURATION:-$DURATION}
VENV="${CARGO_TARGET_DIR:-target}/bench-venv"
ra_missing=()
[ -x "$VENV/bin/gunicorn" ] || ra_missing+=("gunicorn and Flask in $VENV (bash benches/apps/setup.sh)")
command -v node >/dev/null 2>&1 || ra_missing+=("node (apt-get install nodejs)")
if [ ${#ra_missing[@]} -gt 0 ]; then
  echo "benches/load.sh --real-apps: missing ${ra_missing[*]}" >&2
  exit 2
fi

read -r -a RA_PORTS < <(python3 - "${#ALL_APPS[@]}" <<'PYEOF'
import socket, sys
socks = [socket.socket() for _ in range(4 * int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PYEOF
)
declare -A APP_PORT VG_PORT VG_ADMIN NG_PORT
i=0
for a in "${ALL_APPS[@]}"; do
  APP_PORT[$a]=${RA_PORTS[$i]}; VG_PORT[$a]=${RA_PORTS[$((i + 1))]}
  VG_ADMIN[$a]=${RA_PORTS[$((i + 2))]}; NG_PORT[$a]=${RA_PORTS[$((i + 3))]}
  i=$((i + 4))
done

# The apps (load side).
APPDIR=benches/apps
"${LOADSIDE[@]}" "$VENV/bin/python" "$APPDIR/http_server_app.py" "${APP_PORT[python-http.server]}" &
PIDS+=($!)
"${LOADSIDE[@]}" "$VENV/bin/gunicorn" --log-level warning --no-control-socket -w 1 --backlog 2048 \
  -b "127.0.0.1:${APP_PORT[gunicorn-sync]}" --chdir "$APPDIR" wsgi_app:app &
PIDS+=($!)
"${LOADSIDE[@]}" "$VENV/bin/gunicorn" --log-level warning --no-control-socket -w 1 -k gthread --threads 4 --backlog 2048 \
  -b "127.0.0.1:${APP_PORT[gunicorn-gthread]}" --chdir "$APPDIR" wsgi_app:app &
PIDS+=($!)
"${LOADSIDE[@]}" node "$APPDIR/node_app.js" "${APP_PORT[node-http]}" &
PIDS+=($!)
# nginx's worker runs as an unprivileged user: the files and the way to them readable.
mkdir -p "$WORK/static/gated" "$WORK/static/pass"
for f in x gated/x pass/x; do printf 'hello\n' > "$WORK/static/$f"; done
chmod o+rx "$WORK"; chmod -R o+rX "$WORK/static"
start_nginx static "  server { listen 127.0.0.1:${APP_PORT[nginx-static]}; root $WORK/static; default_type text/plain; }" \
  "${LOADSIDE[@]}"

# One nginx proxy in front of them all, upstream keep-alive (the same settings as nginx-proxy).
ngconf=""
for a in "${APPS[@]}"; do
  ngconf+="  upstream ${a//[.-]/_} { server 127.0.0.1:${APP_PORT[$a]}; keepalive 64; }
  server {
    listen 127.0.0.1:${NG_PORT[$a]};
    $PROXY_LOG
    location / { proxy_pass http://${a//[.-]/_}; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }
"
done
start_nginx front_apps "$ngconf" "${SUT[@]}"

# A verigate per app (the bench config with that app as its upstream; the same session keys,
# so the minted cookies open on each).
declare -A RA_VG_PID
for a in "${APPS[@]}"; do
  sed -e "s/^listen: .*/listen: 127.0.0.1:${VG_PORT[$a]}/" \
    -e "s/^admin_listen: .*/admin_listen: 127.0.0.1:${VG_ADMIN[$a]}/" \
    -e "s/^upstream: .*/upstream: { addrs: [\"127.0.0.1:${APP_PORT[$a]}\"] }/" \
    "$WORK/verigate.yaml" > "$WORK/verigate-$a.yaml"
  BENCH_KEYS="$BENCH_KEYS" BENCH_IMP_KEY=sandbox_key BENCH_IMP_SECRET=sandbox_secret \
    "${SUT[@]}" "$BIN" run -c "$WORK/verigate-$a.yaml" 2>"$WORK/verigate-$a.log" &
  RA_VG_PID[$a]=$!
  PIDS+=($!)
done
for a in "${APPS[@]}"; do
  wait_port "${APP_PORT[$a]}" /x; wait_port "${VG_ADMIN[$a]}" /readyz; wait_port "${NG_PORT[$a]}" /x
done

ra_url() { # app target
  case "$2" in
    direct) echo "http://127.0.0.1:${APP_PORT[$1]}/x" ;;
    gated) echo "http://127.0.0.1:${VG_PORT[$1]}/gated/x" ;;
    pass) echo "http://127.0.0.1:${VG_PORT[$1]}/pass/x" ;;
    nginx-ka) echo "http://127.0.0.1:${NG_PORT[$1]}/x" ;;
  esac
}
RA_TARGETS=(direct gated pass nginx-ka)
for a in "${APPS[@]}"; do
  for t in "${RA_TARGETS[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${EXTRA[@]}" -H "Cookie: vg=$COOKIE" "$(ra_url "$a" "$t")")
    [ "$code" = 200 ] || { echo "$a $t: $code" >&2; exit 1; }
  done
  load 1s "$(ra_url "$a" gated)" >/dev/null # warm up
done

# Every measured run: app target connections p50 p99 requests/s (wrk --latency).
: > "$WORK/real"
ra_run() { # app target connections
  local out
  out=$(load "${RA_DURATION}s" "$(ra_url "$1" "$2")" --latency -c"$3")
  if echo "$out" | grep -qE "Non-2xx|Socket errors"; then echo "$1 $2 -c$3:" >&2; echo "$out" >&2; fi
  echo "$1 $2 $3 $(echo "$out" | awk '$1 == "50%" || $1 == "99%" { printf "%s ", $2 } /Requests\/sec/ { print $2 }')" >> "$WORK/real"
}
for r in $(seq 0 $((ROUNDS - 1))); do
  for a in "${APPS[@]}"; do
    for i in 0 1 2 3; do
      t=${RA_TARGETS[$(((r + i) % 4))]}
      ra_run "$a" "$t" 1
      ra_run "$a" "$t" "$CONNS"
    done
  done
done

PIN="$PIN" BUILD="$BUILD" python3 - "$WORK/real" "$ROUNDS" "$RA_DURATION" "$CONNS" "${APPS[@]}" <<'PYEOF'
import os, statistics, sys
med = statistics.median
path, rounds, duration, conns, apps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit): return float(v[:-len(unit)]) * f
    return float(v)
runs = {}  # (app, target, conns) -> [(p50, p99, rps)] in round order
for line in open(path):
    a, t, c, p50, p99, rps = line.split()
    runs.setdefault((a, t, c), []).append((ms(p50), ms(p99), float(rps)))
T = ("direct", "gated", "pass", "nginx-ka")
print(f"\nreal apps: {rounds} interleaved rounds of {duration}s; one connection, and {conns} connections; "
      f"verigate and nginx one worker each")
print(f"verigate build: {os.environ['BUILD']}")
print("pinned: the proxies alone on the last CPU, wrk and the apps on the others\n" if os.environ.get("PIN") == "1" else "not pinned\n")
def f(v): return f"{v*1000:.0f} µs" if v < 1 else f"{v:.2f} ms"
print(f"| app | target | p50, 1 conn | p99, 1 conn | p50, {conns} conns | p99, {conns} conns | requests/s, {conns} conns |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for a in apps:
    for t in T:
        one, many = runs[(a, t, "1")], runs[(a, t, conns)]
        print(f"| {a} | {t} | {f(med(x[0] for x in one))} | {f(med(x[1] for x in one))} | "
              f"{f(med(x[0] for x in many))} | {f(med(x[1] for x in many))} | {med(x[2] for x in many):,.0f} |")
def each(a, t, c, j): return [x[j] for x in runs[(a, t, c)]]
def rng(v, fmt): return f"{fmt(med(v))} ({' '.join(fmt(x) for x in v)})"
print("\nmedians of the per-round differences and ratios (rounds in brackets):")
print(f"| app | p50 added, gated − direct, 1 conn (goal ≤ 0.3 ms) | p99 added, 1 conn (goal ≤ 1 ms) | p50 gated − nginx-ka, 1 conn | requests/s gated / nginx-ka, {conns} conns | gated / direct |")
print("| --- | --- | --- | --- | --- | --- |")
ms3 = lambda v: f"{v:+.3f}"
r2 = lambda v: f"{v:.2f}"
for a in apps:
    d50 = [g - d for g, d in zip(each(a, "gated", "1", 0), each(a, "direct", "1", 0))]
    d99 = [g - d for g, d in zip(each(a, "gated", "1", 1), each(a, "direct", "1", 1))]
    n50 = [g - n for g, n in zip(each(a, "gated", "1", 0), each(a, "nginx-ka", "1", 0))]
    rn = [g / n for g, n in zip(each(a, "gated", conns, 2), each(a, "nginx-ka", conns, 2))]
    rd = [g / n for g, n in zip(each(a, "gated", conns, 2), each(a, "direct", conns, 2))]
    print(f"| {a} | {rng(d50, ms3)} | {rng(d99, ms3)} | {rng(n50, ms3)} | {rng(rn, r2)} | {rng(rd, r2)} |")
PYEOF
