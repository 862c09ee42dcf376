#!/usr/bin/env bash
# What TLS costs each model that serves it, on one server core: every model that lists tls in
# `echo-server --list` (or MODELS="a b"), its server pinned to CPU 0 with --threads 1 and the
# client to CPU 1, in ROUNDS interleaved rounds (default 3) of DURATION each (default 3s):
#   churn over tls:, full handshakes (4 concurrent connect-echo-close loops), then resumed ones
#   (--tls-resume); ping-pong on one connection of 64-byte messages over tls: and over tcp.
# Writes every report and a summary.md (medians with the range over rounds; the TLS/TCP ratio of
# server CPU per message is paired within each round) to results/tls-costs-<date>-<host>-<time>/.
# Usage: [MODELS="tokio smol"] scripts/tls-costs.sh [ROUNDS] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
duration=${2:-3s}
cargo build --release --quiet -p echo-servers -p echo-bench
server_bin=./target/release/echo-server
bench_bin=./target/release/echo-bench
models=${MODELS:-$("$server_bin" --list | awk -F'\t' '$2 ~ /tls/ {print $1}')}
out="results/tls-costs-$(date -u +%F)-$(hostname -s)-$(date -u +%H%M%S)"
mkdir "$out"
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true' EXIT

# Starts $1 on $2 (tls or tcp), pinned to CPU 0; sets $server, $addr and (for tls) $ca.
start() {
  local lines
  lines=$(mktemp)
  local listen=127.0.0.1:0
  [ "$2" = tcp ] || listen="$2:$listen"
  taskset -c 0 "$server_bin" --model "$1" --threads 1 --listen "$listen" >"$lines" &
  server=$!
  for _ in $(seq 50); do
    grep -q '^listening on' "$lines" && { [ "$2" = tcp ] || grep -q '^tls:' "$lines"; } && break
    sleep 0.1
  done
  addr=$(awk '/^listening on/ {print $3}' "$lines")
  ca=$(sed -n 's/^tls: .* ca=//p' "$lines")
  rm -f "$lines"
  [ -n "$addr" ] || { echo "tls-costs: $1 did not start on $2:" >&2; exit 1; }
}

stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=
}

measure() { # name, then echo-bench run options
  local name=$1
  shift
  "$bench_bin" run --target "$addr" -d "$duration" --warmup 1s --threads 1 --client-cpus 1 \
    --server-pid "$server" --quiet --json "$out/$name.json" "$@"
}

for round in $(seq "$rounds"); do
  for model in $models; do
    echo "round $round/$rounds: $model" >&2
    start "$model" tls
    measure "$model.churn-full.r$round" --ca "$ca" --workload churn -c 4
    measure "$model.churn-resumed.r$round" --ca "$ca" --workload churn -c 4 --tls-resume
    measure "$model.ping-tls.r$round" --ca "$ca" -c 1
    stop
    start "$model" tcp
    measure "$model.ping-tcp.r$round" -c 1
    stop
  done
done

idle=${IDLE:-0}
idle_models=${IDLE_MODELS:-tokio}
if [ "$idle" -gt 0 ]; then
  for model in $idle_models; do
    for transport in tls tcp; do
      echo "idle: $model, $idle connections over $transport" >&2
      start "$model" "$transport"
      sleep 0.3
      awk '/^VmRSS:/ {print $2}' "/proc/$server/status" >"$out/$model.idle-$transport.rss-before-kib"
      trust=()
      [ "$transport" = tls ] && trust=(--ca "$ca")
      measure "$model.idle-$transport" "${trust[@]}" -c "$idle" --connect-rate 2000 \
        --workload rate --rate 100 --timeout 30s
      stop
    done
  done
fi

python3 - "$out" "$rounds" "$duration" "$models" "$idle" "$idle_models" <<'PY'
import json, os, platform, statistics, subprocess, sys
out, rounds, duration, models = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split()
idle, idle_models = int(sys.argv[5]), sys.argv[6].split()
def load(model, kind, r):
    return json.load(open(f"{out}/{model}.{kind}.r{r}.json"))
def spread(values, fmt):
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"
def per_handshake(rep):
    return rep["tls"]["server_cpu_per_handshake_us"]
def per_message(rep):
    return rep["server"]["cpu_s"] * 1e6 / rep["messages"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
lines = [
    "# What TLS costs each model, on one server core",
    "",
    f"Command: `scripts/tls-costs.sh {rounds} {duration}` (MODELS: {' '.join(models)}), commit {commit}"
    + (" with uncommitted changes" if dirty else "") + ".",
    f"Machine: {cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}. Server on CPU 0 with "
    "`--threads 1`, client on CPU 1 with one thread; TLS 1.3, X25519, ECDSA P-256 (the servers' "
    "self-signed certificate), rustls on ring on both sides.",
    "",
    f"Medians over {rounds} interleaved rounds of {duration}, with the range. Churn: 4 concurrent "
    "connect-handshake-echo-close loops; a handshake's server CPU is the server's CPU time in the "
    "window over the handshakes completed in it (the echo and the TCP connect included). "
    "Ping-pong: one connection, 64-byte messages; the TLS/TCP ratio is paired within each round.",
    "",
    "| model | full handshakes/s | server µs CPU per full | resumed/s | server µs CPU per resumed | handshake p99 µs (full) | client CPU (full) | ping µs CPU/msg TLS | TCP | TLS/TCP |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for m in models:
    full = [load(m, "churn-full", r) for r in range(1, rounds + 1)]
    res = [load(m, "churn-resumed", r) for r in range(1, rounds + 1)]
    tls = [load(m, "ping-tls", r) for r in range(1, rounds + 1)]
    tcp = [load(m, "ping-tcp", r) for r in range(1, rounds + 1)]
    i0 = lambda v: f"{v:,.0f}"
    f1 = lambda v: f"{v:.1f}"
    f2 = lambda v: f"{v:.2f}"
    lines.append("| " + " | ".join([
        m,
        spread([x["tls"]["handshakes_per_s"] for x in full], i0),
        spread([per_handshake(x) for x in full], i0),
        spread([x["tls"]["handshakes_per_s"] for x in res], i0),
        spread([per_handshake(x) for x in res], i0),
        spread([x["tls"]["handshake_latency_us"]["p99"] for x in full], i0),
        spread([x["client"]["cpu_cores"] for x in full], f2),
        spread([per_message(x) for x in tls], f1),
        spread([per_message(x) for x in tcp], f1),
        spread([per_message(a) / per_message(b) for a, b in zip(tls, tcp)], f2),
    ]) + " |")
if idle:
    lines += [
        "",
        f"Memory with {idle:,} connections held open ({duration} at 100 msg/s among them, after "
        "opening them at 2,000/s): the server's RSS in the window less its RSS before the "
        "connects, per connection.",
        "",
        "| model | TCP KiB per connection | TLS KiB per connection | TLS less TCP |",
        "|---|---:|---:|---:|",
    ]
    for m in idle_models:
        per = {}
        for t in ("tcp", "tls"):
            rep = json.load(open(f"{out}/{m}.idle-{t}.json"))
            before = int(open(f"{out}/{m}.idle-{t}.rss-before-kib").read())
            per[t] = (rep["server"]["rss_kib"] - before) / idle
            errors = sum(v for v in rep["errors"].values() if isinstance(v, int))
            if errors:
                per[t + "-errors"] = errors
        lines.append(f"| {m} | {per['tcp']:.1f} | {per['tls']:.1f} | {per['tls'] - per['tcp']:.1f} |")
        for t in ("tcp", "tls"):
            if per.get(t + "-errors"):
                lines.append(f"\n{m} over {t}: {per[t + '-errors']} errors in that run.")
warnings = sorted({w for f in os.listdir(out) if f.endswith(".json")
                   for w in json.load(open(f"{out}/{f}")).get("warnings", [])})
if warnings:
    lines += ["", "Warnings the reports carry:", ""] + [f"- {w}" for w in warnings]
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"\nstored in {out}/")
PY
