#!/usr/bin/env bash
# Runs the quick profile N times (default 3), then `echo-bench stability` over the runs: each
# category's leading group per run and any contradiction. The runs and the report are written
# under results/ by the tool. Extra arguments go to every suite run.
# Exit: 0 no contradiction, 1 a contradiction or a failed run, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-3}"
[[ "$n" =~ ^[0-9]+$ && "$n" -ge 2 ]] || { echo "usage: scripts/stability.sh N [suite options]  (N >= 2)" >&2; exit 2; }
shift || true
cargo build --release --locked -p echo-bench
runs=()
for i in $(seq 1 "$n"); do
    echo "== run $i of $n" >&2
    start=$(date +%s)
    target/release/echo-bench suite "$@" > /dev/null || echo "run $i saw failures; see its summary" >&2
    runs+=("results/$(cat results/latest)")
    echo "   $(( $(date +%s) - start )) s, ${runs[-1]}" >&2
done
exec target/release/echo-bench stability "${runs[@]}"
