#!/usr/bin/env bash
# Measures the load generator's own cost: the event-loop engine against the naive
# thread-per-connection client (--engine threads), at 1, 50 and 500 connections, with the
# server pinned to one core and the client to the other. Prints one line per run.
# Usage: scripts/client-overhead.sh [MODEL] [DURATION]   (default: mio 5s)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-mio}
duration=${2:-5s}
cargo build --release --quiet --workspace
port=7979
taskset -c 1 ./target/release/echo-server --model "$model" --listen "127.0.0.1:$port" >/dev/null &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
sleep 0.5
printf '%-10s %6s %14s %10s %18s\n' engine conns "msg/s" "client" "msg/s per client core"
for conns in 1 50 500; do
  for engine in event-loop threads; do
    json=$(mktemp)
    ./target/release/echo-bench run --target "127.0.0.1:$port" --engine "$engine" \
      -c "$conns" -d "$duration" --warmup 1s --threads 1 --client-cpus 0 \
      --server-pid "$server" --quiet --json "$json"
    python3 - "$json" "$engine" "$conns" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cores = r["client"]["cpu_cores"]
print(f'{sys.argv[2]:<10} {sys.argv[3]:>6} {r["throughput_rps"]:>14.0f} {cores:>9.2f}c {r["throughput_rps"]/max(cores,1e-9):>18.0f}')
PY
    rm -f "$json"
  done
done
