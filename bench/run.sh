#!/usr/bin/env bash
# bench/run.sh: KV v2 read/write benchmark of secretd against two references,
# in one run on this machine:
#   floor    bench-floor, an axum server answering a same-size JSON body (no work)
#   secretd  dev mode, SQLite (WAL, synchronous=FULL) on a real on-disk file
#   openbao  `bao server` with storage "raft" (persistent), KV v2 at secret/
# Every server is pinned to SERVER_CPU and the load generator to CLIENT_CPU.
# Prints a markdown table; leaves nothing running and nothing on disk except
# the results in OUT.
#
# Usage: bench/run.sh            (from anywhere; builds release binaries first)
# Environment (defaults in brackets):
#   CONNECTIONS [32]  DURATION [10] s  WARMUP [3] s  KEYS [100]  ROUNDS [3]
#   SCENARIOS ["read write"]  SERVERS ["floor secretd openbao"]
#   SERVER_CPU [0]  CLIENT_CPU [1]  BAO [/opt/bao/bin/bao]
#   CARGO_TARGET_DIR [<repo>/target]  SKIP_BUILD [0]  WRK_CHECK [1]
#   BENCH_TMPDIR [/var/tmp] (must not be tmpfs)  OUT [<target>/bench-results/<time>]
#   KEEP_WORK [0] (keep the databases and logs)
#   AUDIT [0] (1: secretd and OpenBao each log to a file audit device in the
#              scratch directory, on the same disk as the database)
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BAO=${BAO:-/opt/bao/bin/bao}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
KEYS=${KEYS:-100}
ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-"read write"}
SERVERS=${SERVERS:-"floor secretd openbao"}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
WRK_CHECK=${WRK_CHECK:-1}
KEEP_WORK=${KEEP_WORK:-0}
AUDIT=${AUDIT:-0}
OUT=${OUT:-$TARGET_DIR/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

PIDS=()
WORK=
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $WORK && -d $WORK ]]; then
        mkdir -p "$OUT"
        cp "$WORK"/*.log "$OUT"/ 2>/dev/null || true
        if [[ $KEEP_WORK == 1 ]]; then
            log "kept $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    if [[ $status != 0 ]]; then
        log "exit $status; server logs are in $OUT"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in curl python3 taskset; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ -x $BAO ]] || die "OpenBao not found at $BAO (set BAO=...)"
(( $(nproc) >= 2 )) || log "warning: fewer than 2 cores; server and client share one"

# ---- build ------------------------------------------------------------------
if [[ $SKIP_BUILD != 1 ]]; then
    log "building release binaries into $TARGET_DIR"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p secretd -p secretd-bench) \
        || die "cargo build"
fi
SECRETD=$TARGET_DIR/release/secretd
FLOOR=$TARGET_DIR/release/bench-floor
BENCH=$TARGET_DIR/release/secretd-bench
for bin in "$SECRETD" "$FLOOR" "$BENCH"; do
    [[ -x $bin ]] || die "missing $bin"
done

# ---- scratch space on a real disk -------------------------------------------
mkdir -p "$OUT"
WORK=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/secretd-bench.XXXXXX")
FSTYPE=$(stat -f -c %T "$WORK")
[[ $FSTYPE != tmpfs && $FSTYPE != ramfs ]] \
    || die "$WORK is on $FSTYPE; writes would not be durable (set BENCH_TMPDIR)"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http URL STATUS_REGEX SECONDS: until GET URL answers a matching status.
wait_http() {
    local url=$1 want=$2 deadline=$((SECONDS + $3)) got
    while ((SECONDS < deadline)); do
        got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $got =~ $want ]] && return 0
        sleep 0.2
    done
    die "$url did not answer $want within $3 s (last: ${got:-nothing})"
}

# start NAME CMD...: runs CMD pinned to the server core, logging to WORK/NAME.log.
start() {
    local name=$1
    shift
    taskset -c "$SERVER_CPU" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    log "started $name (pid $!)"
}

alive() {
    kill -0 "${PIDS[-1]}" 2>/dev/null || die "$1 exited at start; see $OUT/$1.log"
}

# enable_file_audit ADDR TOKEN FILE: a `file` audit device at file/ (AUDIT=1).
enable_file_audit() {
    local got
    got=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "X-Vault-Token: $2" \
        -d "{\"type\":\"file\",\"options\":{\"file_path\":\"$3\"}}" "$1/v1/sys/audit/file")
    [[ $got == 204 ]] || die "enabling a file audit device at $1 answered $got"
    log "audit device file/ -> $3"
}

declare -A ADDR TOKEN

# ---- machine ----------------------------------------------------------------
FSYNC=$(python3 - "$WORK" <<'EOF'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
times = []
for i in range(300):
    os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
    t = time.perf_counter()
    os.fsync(fd)
    times.append((time.perf_counter() - t) * 1e3)
os.close(fd)
os.unlink(path)
times.sort()
q = lambda p: times[min(len(times) - 1, int(p * len(times)))]
print(f"4 KiB write+fsync on {sys.argv[1]}: p50 {q(.5):.3f} ms, p90 {q(.9):.3f} ms, "
      f"p99 {q(.99):.3f} ms, mean {sum(times)/len(times):.3f} ms (n={len(times)})")
EOF
)
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
    echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "scratch: $WORK ($FSTYPE)"
    echo "fsync: $FSYNC"
    echo "pinning: servers on CPU $SERVER_CPU, load generator on CPU $CLIENT_CPU"
    echo "load: $CONNECTIONS connections, ${WARMUP} s warm-up + ${DURATION} s per scenario, $KEYS keys, 1 KiB values, $ROUNDS round(s)"
    echo "openbao: $("$BAO" version)"
    echo "secretd: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- server || echo ' (server/ modified)')"
} >"$OUT/machine.txt"
log "machine facts: $OUT/machine.txt (also at the top of the summary)"

# ---- servers ----------------------------------------------------------------
for server in $SERVERS; do
    port=$(free_port)
    ADDR[$server]=127.0.0.1:$port
    case $server in
    floor)
        start floor "$FLOOR" --listen "127.0.0.1:$port"
        alive floor
        wait_http "http://127.0.0.1:$port/v1/sys/health" '^200$' 20
        TOKEN[floor]=root
        ;;
    secretd)
        mkdir -p "$WORK/secretd"
        start secretd "$SECRETD" server --dev --dev-root-token-id root \
            --dev-listen-address "127.0.0.1:$port" \
            --dev-storage "sqlite://$WORK/secretd/secretd.db"
        alive secretd
        wait_http "http://127.0.0.1:$port/v1/sys/health" '^200$' 60
        TOKEN[secretd]=root
        if [[ $AUDIT == 1 ]]; then
            enable_file_audit "http://127.0.0.1:$port" root "$WORK/secretd/audit.log"
        fi
        ;;
    openbao)
        cluster_port=$(free_port)
        mkdir -p "$WORK/openbao/raft"
        cat >"$WORK/openbao/config.hcl" <<EOF
storage "raft" {
  path    = "$WORK/openbao/raft"
  node_id = "n1"
}
listener "tcp" {
  address     = "127.0.0.1:$port"
  tls_disable = true
}
api_addr      = "http://127.0.0.1:$port"
cluster_addr  = "http://127.0.0.1:$cluster_port"
disable_mlock = true
ui            = false
log_level     = "warn"
unsafe_allow_api_audit_creation = true
EOF
        start openbao "$BAO" server -config="$WORK/openbao/config.hcl"
        alive openbao
        # Any answer means it listens; 501 = not initialised yet.
        wait_http "http://127.0.0.1:$port/v1/sys/health" '^[1-5][0-9][0-9]$' 60
        bao() { BAO_ADDR="http://127.0.0.1:$port" VAULT_ADDR="http://127.0.0.1:$port" "$BAO" "$@"; }
        bao operator init -key-shares=1 -key-threshold=1 -format=json >"$WORK/openbao/init.json" \
            || die "bao operator init"
        read -r unseal_key root_token < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["unseal_keys_b64"][0], d["root_token"])' "$WORK/openbao/init.json")
        bao operator unseal "$unseal_key" >/dev/null || die "bao operator unseal"
        wait_http "http://127.0.0.1:$port/v1/sys/health" '^200$' 60
        BAO_TOKEN=$root_token VAULT_TOKEN=$root_token bao secrets enable -path=secret kv-v2 >/dev/null \
            || die "enabling kv-v2 on OpenBao"
        TOKEN[openbao]=$root_token
        if [[ $AUDIT == 1 ]]; then
            enable_file_audit "http://127.0.0.1:$port" "$root_token" "$WORK/openbao/audit.log"
        fi
        # KV v2 finishes setting up in the background: wait for a write to work.
        deadline=$((SECONDS + 60))
        until [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-Vault-Token: $root_token" \
            -d '{"data":{"probe":"1"}}' "http://127.0.0.1:$port/v1/secret/data/bench-probe") == 200 ]]; do
            ((SECONDS < deadline)) || die "OpenBao's secret/ mount never accepted a write"
            sleep 0.5
        done
        ;;
    *) die "unknown server $server (floor, secretd, openbao)" ;;
    esac
    log "$server ready at ${ADDR[$server]}"
done

# ---- load -------------------------------------------------------------------
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        for server in $SERVERS; do
            log "round $round: $scenario on $server"
            taskset -c "$CLIENT_CPU" "$BENCH" --addr "${ADDR[$server]}" --token "${TOKEN[$server]}" \
                --mount secret --label "$server" --scenarios "$scenario" \
                --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
                --keys "$KEYS" --json >>"$RESULTS" \
                || die "$scenario on $server (server log: $OUT/$server.log)"
            tail -n1 "$RESULTS" | python3 -c '
import json, sys
r = json.load(sys.stdin)
l = r["latency_us"]
print("  %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %s"
      % (r["rps"], l["p50"] / 1e3, l["p99"] / 1e3, r["errors"] or 0))' >&2
        done
    done
done

# ---- cross-check: wrk against the same read path ----------------------------
WRK_RESULTS=$OUT/wrk.txt
: >"$WRK_RESULTS"
if [[ $WRK_CHECK == 1 ]] && command -v wrk >/dev/null && [[ " $SCENARIOS " == *" read "* ]]; then
    for server in $SERVERS; do
        log "wrk cross-check: GET one seeded key on $server"
        rps=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
            -H "X-Vault-Token: ${TOKEN[$server]}" \
            "http://${ADDR[$server]}/v1/secret/data/bench-read-0" | tee "$WORK/wrk-$server.log" \
            | awk '/Requests\/sec/ {print $2}')
        non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk-$server.log")
        echo "$server ${rps:-?} ${non2xx:-0}" >>"$WRK_RESULTS"
    done
fi

# ---- summary ----------------------------------------------------------------
python3 - "$RESULTS" "$WRK_RESULTS" "$OUT/machine.txt" <<'EOF' | tee "$OUT/summary.md"
import json, statistics, sys
from collections import defaultdict

runs = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r["label"], r["scenario"])].append(r)

def median_run(rs):
    rs = sorted(rs, key=lambda r: r["rps"])
    return rs[len(rs) // 2]

pick = {k: median_run(v) for k, v in runs.items()}
order = ["floor", "secretd", "openbao"]
servers = [s for s in order if any(k[0] == s for k in pick)]
scenarios = [s for s in ["read", "write"] if any(k[1] == s for k in pick)]

print("```")
print(open(sys.argv[3]).read().rstrip())
print("```")
print()
print("| server | scenario | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | client CPU | vs floor |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for sc in scenarios:
    floor = pick.get(("floor", sc))
    for s in servers:
        r = pick.get((s, sc))
        if not r:
            continue
        l = r["latency_us"]
        rps = f"{r['rps']:,.0f}"
        if len(runs[(s, sc)]) > 1:
            all_rps = [x["rps"] for x in runs[(s, sc)]]
            rps += f" ({min(all_rps):,.0f}–{max(all_rps):,.0f})"
        ratio = f"{r['rps'] / floor['rps']:.1%}" if floor else "–"
        errs = sum(r["errors"].values())
        ms = lambda us: f"{us / 1e3:.2f}"
        cpu = f"{r['client_cpu']:.0%}" if r.get("client_cpu") is not None else "–"
        print(f"| {s} | {sc} | {rps} | {ms(l['p50'])} | {ms(l['p90'])} | {ms(l['p99'])} | "
              f"{ms(l['p999'])} | {ms(l['max'])} | {errs} | {cpu} | {ratio} |")
if any(len(v) > 1 for v in runs.values()):
    print("\nreq/s is the median round (range over rounds in brackets); latencies are from that round.")
print("client CPU: the load generator's share of its core (near 100% would mean the client limits).")

wrk = [l.split() for l in open(sys.argv[2]) if l.strip()]
if wrk:
    print("\nCross-check with wrk (1 thread, same connections, GET of one seeded key):\n")
    print("| server | wrk req/s | non-2xx | secretd-bench read req/s |")
    print("|---|---:|---:|---:|")
    for s, rps, non2xx in wrk:
        mine = pick.get((s, "read"))
        print(f"| {s} | {float(rps):,.0f} | {non2xx} | {mine['rps']:,.0f} |" if mine and rps != "?"
              else f"| {s} | {rps} | {non2xx} | – |")

print("\nTargets:")
def rps(s, sc):
    r = pick.get((s, sc))
    return r["rps"] if r else None
sr, fr, br, sw = rps("secretd", "read"), rps("floor", "read"), rps("openbao", "read"), rps("secretd", "write")
verdict = lambda ok: "MET" if ok else "MISSED"
if sr and fr:
    print(f"- KV reads >= 50% of the floor: secretd {sr:,.0f} / floor {fr:,.0f} = {sr / fr:.1%} -> {verdict(sr >= fr / 2)}")
if sr and br:
    print(f"- KV reads above OpenBao: secretd {sr:,.0f} / OpenBao {br:,.0f} = {sr / br:.2f}x -> {verdict(sr > br)}")
if sw:
    print(f"- >= 2,000 durable writes/s on SQLite: secretd {sw:,.0f}/s -> {verdict(sw >= 2000)}")
    bw = rps("openbao", "write")
    if bw:
        print(f"  (OpenBao raft writes: {bw:,.0f}/s; secretd/OpenBao = {sw / bw:.2f}x)")
EOF
log "results in $OUT"
