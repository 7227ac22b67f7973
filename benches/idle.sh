# Idle connections (`benches/load.sh --idle N`); sourced by load.sh after the sessions are
# minted, with its variables and functions.
#
# For verigate (gated route) and for the nginx proxy (nginx-proxy): the proxy's RSS before and
# while N idle keep-alive client connections are open (each has made one request, then sits
# idle: benches/idle.py), and the p50/p99 of --connections active clients without and with the
# idle ones: each round opens the idle connections, measures, closes them and measures again.
# The RSS per idle connection is (with − before) / N (medians over the rounds); nginx's is its
# worker's RSS.

[ "$(ulimit -n)" -gt $((IDLE + 1024)) ] || ulimit -n $((2 * IDLE + 8192)) 2>/dev/null || {
  echo "--idle $IDLE needs more open files than ulimit -n allows ($(ulimit -n))" >&2; exit 2; }
rss_of() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
NG_WORKER=$(pgrep -P "$(cat "$WORK/front.pid")" | head -n1) # the front nginx's one worker
declare -A IDLE_URL=([verigate]="$GATED" [nginx-proxy]="http://127.0.0.1:$P_PROXY/x")
declare -A IDLE_PID=([verigate]="$VG_PID" [nginx-proxy]="$NG_WORKER")
declare -A IDLE_PORT=([verigate]="$P_VG" [nginx-proxy]="$P_PROXY")
declare -A IDLE_PATH=([verigate]="/gated/x" [nginx-proxy]="/x")
: > "$WORK/idle"
for t in verigate nginx-proxy; do load 1s "${IDLE_URL[$t]}" >/dev/null; done
idle_run() { # target with|without round
  local out
  out=$(load "${DURATION}s" "${IDLE_URL[$1]}" --latency)
  echo "$1 $2 $3 $(echo "$out" | awk '$1 == "50%" || $1 == "99%" { printf "%s ", $2 } /Requests\/sec/ { print $2 }')" >> "$WORK/idle"
}
for r in $(seq 0 $((ROUNDS - 1))); do
  for t in verigate nginx-proxy; do
    pid=${IDLE_PID[$t]}
    before=$(rss_of "$pid")
    # The idle clients hold their connections until their stdin (a fifo) closes.
    rm -f "$WORK/idle.in" && mkfifo "$WORK/idle.in"
    "${LOADSIDE[@]}" python3 benches/idle.py "${IDLE_PORT[$t]}" "${IDLE_PATH[$t]}" "$COOKIE" "$IDLE" \
      < "$WORK/idle.in" > "$WORK/idle.out" &
    IDLER=$!
    PIDS+=($IDLER)
    exec 7> "$WORK/idle.in"
    for _ in $(seq 1 3000); do grep -q READY "$WORK/idle.out" && break; sleep 0.1; done
    grep -q READY "$WORK/idle.out" || { echo "$t: the idle connections did not open" >&2; exit 1; }
    with=$(rss_of "$pid")
    echo "$t $r $before $with $(awk '{ print $2 }' "$WORK/idle.out")" >> "$WORK/idle-rss"
    idle_run "$t" with "$r"
    exec 7>&-
    wait "$IDLER" || true
    idle_run "$t" without "$r"
  done
done

python3 - "$WORK/idle" "$WORK/idle-rss" "$IDLE" "$CONNS" "$ROUNDS" "$DURATION" <<'PYEOF'
import statistics, sys
med = statistics.median
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit): return float(v[:-len(unit)]) * f
    return float(v)
runs = {}
for line in open(sys.argv[1]):
    t, mode, r, p50, p99, rps = line.split()
    runs.setdefault((t, mode), []).append((ms(p50), ms(p99), float(rps)))
n, conns = int(sys.argv[3]), sys.argv[4]
print(f"\n{n:,} idle keep-alive connections; active load: {conns} connections, {sys.argv[5]} rounds of {sys.argv[6]}s each way\n")
print(f"| proxy | RSS without | RSS with {n:,} idle | per idle connection | p50 / p99 active, without | with idle | p99 with / without |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
rss = {}
for line in open(sys.argv[2]):
    t, _, before, with_, opened = line.split()
    rss.setdefault(t, []).append((int(before), int(with_), int(opened)))
for t, v in rss.items():
    before, with_ = med(x[0] for x in v), med(x[1] for x in v)
    per = med((x[1] - x[0]) / x[2] for x in v)
    wo, wi = runs[(t, "without")], runs[(t, "with")]
    p50a, p99a = med(x[0] for x in wo), med(x[1] for x in wo)
    p50b, p99b = med(x[0] for x in wi), med(x[1] for x in wi)
    print(f"| {t} | {before/1024:.1f} MiB | {with_/1024:.1f} MiB | {per:.1f} KiB | "
          f"{p50a:.2f} / {p99a:.2f} ms | {p50b:.2f} / {p99b:.2f} ms | {p99b/p99a:.2f} |")
PYEOF
