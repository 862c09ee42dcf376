#!/usr/bin/env bash
# Where a server's CPU goes at one point, seen from the kernel: runs MODEL (with any extra
# echo-server arguments, such as --uring-features none) pinned to CPU 1, drives it from CPU 0
# with `echo-bench run`, and counts per echoed message, over the same window, the system calls
# it made, io_uring's tracepoints (submissions, completions, poll arming, work punted to io-wq,
# task work) and its context switches; then a cpu-clock profile of the server (no hardware
# counters needed) split into kernel and user time and its top symbols.
# Usage: scripts/uring-trace.sh MODEL [CONNECTIONS] [PAYLOAD] [-- ECHO-SERVER ARGS...]
#        (defaults: 16 connections, 4096 bytes, 5 s)
# Needs perf (installed with apt-get when missing) and root for the tracepoints.
# Exit: 0 done, 1 a step failed, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: scripts/uring-trace.sh MODEL [CONNECTIONS] [PAYLOAD] [-- ARGS...]" >&2; exit 2; }
model=$1; shift
conns=16; payload=4096
[[ $# -gt 0 && $1 != -- ]] && { conns=$1; shift; }
[[ $# -gt 0 && $1 != -- ]] && { payload=$1; shift; }
[[ $# -gt 0 && $1 == -- ]] && shift
extra=("$@")
duration=${DURATION:-5}
if ! command -v perf >/dev/null; then
    apt-get install -y -qq linux-perf >/dev/null 2>&1 || apt-get install -y -qq linux-tools-generic >/dev/null 2>&1 \
        || { echo "uring-trace: perf is missing and could not be installed; skipping" >&2; exit 0; }
fi
cargo build --release --quiet --locked -p echo-bench -p echo-servers
work=$(mktemp -d)
server=""
cleanup() { [[ -n $server ]] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
taskset -c 1 ./target/release/echo-server --model "$model" --listen 127.0.0.1:0 "${extra[@]}" >"$work/out" &
server=$!
for _ in $(seq 50); do grep -q '^driver:' "$work/out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$work/out")
[[ -n $addr ]] || { echo "uring-trace: $model did not start" >&2; exit 1; }
events=syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom
events+=,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_write
events+=,io_uring:io_uring_submit_req,io_uring:io_uring_complete,io_uring:io_uring_poll_arm
events+=,io_uring:io_uring_queue_async_work,io_uring:io_uring_task_add,io_uring:io_uring_local_work_run
events+=,io_uring:io_uring_short_write,sched:sched_switch,task-clock
# The load first: its warm-up second passes before the counters start, and they stop before it ends.
./target/release/echo-bench run --target "$addr" -c "$conns" --payload "$payload" \
    -d "$((duration + 2))s" --warmup 1s --threads 1 --client-cpus 0 --server-pid "$server" \
    --quiet --json "$work/run.json" &
load=$!
sleep 1
perf stat -x, -e "$events" -p "$server" -o "$work/stat" -- sleep "$duration" 2>/dev/null &
stat=$!
perf record -q -e cpu-clock -F 2000 -g -p "$server" -o "$work/perf.data" -- sleep "$duration" >/dev/null 2>&1 || true
wait "$stat" || true
wait "$load"
python3 - "$work/stat" "$work/run.json" "$duration" "$model ${extra[*]}" "$conns" "$payload" <<'PY'
import json, sys
stat, run, duration, label, conns, payload = sys.argv[1:7]
r = json.load(open(run))
rate = r["throughput_rps"]
messages = rate * float(duration)
print(f"{label.strip()}: {conns} conn x {payload} B, {rate:,.0f} msg/s, server {r['server']['cpu_cores']:.2f} cores, "
      f"client {r['client']['cpu_cores']:.2f} cores")
print(f"{'per echoed message':<40} {'count':>10}")
for line in open(stat):
    parts = line.strip().split(",")
    if len(parts) < 3 or not parts[0].replace(".", "").isdigit():
        continue
    value, unit, name = float(parts[0]), parts[1], parts[2]
    if name == "task-clock":
        print(f"{'server CPU, µs':<40} {value * 1e3 / messages:>10.2f}")  # task-clock is in ms
    else:
        print(f"{name.split(':')[-1]:<40} {value / messages:>10.3f}")
PY
echo "top of the server's cpu-clock profile (self time, kernel symbols marked [k]):"
perf report -i "$work/perf.data" --no-children --sort sym --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -20
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -4
