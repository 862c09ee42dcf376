#!/usr/bin/env bash
# What TLS costs each model that serves it, on one server core: every model that lists tls in
# `echo-server --list` (or MODELS="a b"), its server pinned to CPU 0 with --threads 1 and the
# client to CPU 1, in ROUNDS interleaved rounds (default 3) of DURATION each (default 3s):
#   churn over tls:, full handshakes (4 concurrent connect-echo-close loops), then resumed ones
#   (--tls-resume); ping-pong on one connection of 64-byte messages over tls: and over tcp.
# STORM=1 adds, per model, the p99 of one ping-pong connection over tls: alone and beside a
# handshake storm (a second client on CPU 1 running churn with 4 loops of full handshakes): does
# a handshake on the server's one core hold up an established connection? IDLE=N adds the
# server's memory per connection with N connections held open over tls: and tcp (IDLE_MODELS,
# default tokio). ROUNDS=0 runs only those. CERT_KIND=rsa2048 gives every tls: server an RSA-2048
# certificate instead of the default ECDSA P-256 one.
# Writes every report and a summary.md (medians with the range over rounds; the TLS/TCP ratio of
# server CPU per message is paired within each round) to results/tls-costs-<date>-<host>-<time>/.
# Usage: [MODELS="tokio smol"] [CERT_KIND=rsa2048] [STORM=1] [IDLE=10000 [IDLE_MODELS="tokio mio"]] \
#          scripts/tls-costs.sh [ROUNDS] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
duration=${2:-3s}
cert_kind=${CERT_KIND:-ecdsa-p256}
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
  local kind=()
  [ "$2" = tcp ] || { listen="$2:$listen"; kind=(--tls-cert-kind "$cert_kind"); }
  taskset -c 0 "$server_bin" --model "$1" --threads 1 --listen "$listen" "${kind[@]}" >"$lines" &
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

# A run that saw errors still writes its report; the idle and storm modes go on and the summary
# counts them (a failed connection is part of what they measure).
measure_on() { measure "$@" || echo "tls-costs: $1 saw errors (counted in the summary)" >&2; }

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

storm=${STORM:-0}
idle=${IDLE:-0}
secs=${duration%s}
if [ "$storm" = 1 ] || [ "$idle" -gt 0 ]; then
  case $secs in '' | *[!0-9]*) echo "tls-costs: STORM and IDLE need DURATION in whole seconds (3s)" >&2; exit 2 ;; esac
fi
if [ "$storm" = 1 ]; then
  for round in $(seq "${STORM_ROUNDS:-3}"); do
    for model in $models; do
      echo "storm round $round: $model" >&2
      start "$model" tls
      measure_on "$model.ping-alone.r$round" --ca "$ca" -c 1
      # The storm outlasts the measured window (1 s of warm-up, then DURATION) on both sides.
      "$bench_bin" run --target "$addr" -d "$((secs + 2))s" --warmup 0s --threads 1 \
        --client-cpus 1 --ca "$ca" --workload churn -c 4 --quiet \
        --json "$out/$model.storm.r$round.json" &
      storm_client=$!
      sleep 0.5
      measure_on "$model.ping-storm.r$round" --ca "$ca" -c 1
      wait "$storm_client" || echo "tls-costs: $model's storm saw errors" >&2
      stop
    done
  done
fi

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
      # About one message per connection in the window: each has been used, then sits idle.
      measure_on "$model.idle-$transport" "${trust[@]}" -c "$idle" --connect-rate 2000 \
        --workload rate --rate "$((idle / secs + 1))" --timeout 30s
      stop
    done
  done
fi

python3 - "$out" "$rounds" "$duration" "$models" "$idle" "$idle_models" "$storm" "${STORM_ROUNDS:-3}" "$cert_kind" <<'PY'
import json, os, platform, statistics, subprocess, sys
out, rounds, duration, models = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split()
idle, idle_models = int(sys.argv[5]), sys.argv[6].split()
storm, storm_rounds = sys.argv[7] == "1", int(sys.argv[8])
cert_kind = sys.argv[9]
key = {"ecdsa-p256": "ECDSA P-256", "rsa2048": "RSA-2048"}.get(cert_kind, cert_kind)
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
    "Command: `"
    + (f"CERT_KIND={cert_kind} " if cert_kind != "ecdsa-p256" else "")
    + (f"STORM=1 STORM_ROUNDS={storm_rounds} " if storm else "")
    + (f"IDLE={idle} IDLE_MODELS=\"{' '.join(idle_models)}\" " if idle else "")
    + f"scripts/tls-costs.sh {rounds} {duration}` (MODELS: {' '.join(models)}), commit {commit}"
    + (" with uncommitted changes" if dirty else "") + ".",
    f"Machine: {cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}. Server on CPU 0 with "
    f"`--threads 1`, client on CPU 1 with one thread; TLS 1.3, X25519, {key} (the servers' "
    "self-signed certificate), rustls on ring on both sides.",
    "",
]
if rounds:
    lines += [
    f"Medians over {rounds} interleaved rounds of {duration}, with the range. Churn: 4 concurrent "
    "connect-handshake-echo-close loops; a handshake's server CPU is the server's CPU time in the "
    "window over the handshakes completed in it (the echo and the TCP connect included). "
    "Ping-pong: one connection, 64-byte messages; the TLS/TCP ratio is paired within each round.",
    "",
    "| model | full handshakes/s | server µs CPU per full | resumed/s | server µs CPU per resumed | handshake p99 µs (full) | client CPU (full) | ping µs CPU/msg TLS | TCP | TLS/TCP |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
for m in models if rounds else []:
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
if storm:
    def ping(m, kind, r):
        return json.load(open(f"{out}/{m}.{kind}.r{r}.json"))
    lines += [
        "",
        f"A handshake storm beside an established connection: one ping-pong connection over tls: "
        f"(64-byte messages, closed loop, {duration} after 1 s of warm-up) alone, then beside a "
        "second client running churn (4 loops of full handshakes) against the same server. Both "
        "clients share CPU 1, so part of any rise is the clients' own; a model whose rise stands "
        "out from the others' is one whose handshakes hold up the connection. Medians over "
        f"{storm_rounds} interleaved rounds, with the range; the ratio is paired within each round.",
        "",
        "| model | ping p99 µs alone | beside the storm | storm ÷ alone | ping p50 µs beside the storm | storm's handshakes/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rs = range(1, storm_rounds + 1)
    i0 = lambda v: f"{v:,.0f}"
    f2 = lambda v: f"{v:.2f}"
    def errors(rep):
        return sum(v for v in rep["errors"].values() if isinstance(v, int))
    notes = []
    for m in models:
        alone = [ping(m, "ping-alone", r) for r in rs]
        beside = [ping(m, "ping-storm", r) for r in rs]
        churn = [ping(m, "storm", r) for r in rs]
        lines.append("| " + " | ".join([
            m,
            spread([x["latency_us"]["p99"] for x in alone], i0),
            spread([x["latency_us"]["p99"] for x in beside], i0),
            spread([b["latency_us"]["p99"] / a["latency_us"]["p99"] for a, b in zip(alone, beside)], f2),
            spread([x["latency_us"]["p50"] for x in beside], i0),
            spread([x["tls"]["handshakes_per_s"] for x in churn], i0),
        ]) + " |")
        failed = sum(errors(x) for x in alone + beside + churn)
        if failed:
            notes.append(f"{m}: {failed} errors over its storm runs (see the reports).")
    if notes:
        lines += [""] + notes
if idle:
    lines += [
        "",
        f"Memory with {idle:,} connections held open (opened at 2,000/s, then {duration} at "
        f"{idle // int(duration.rstrip('s')) + 1:,} msg/s among them, about one message each): the server's RSS in the window less its RSS before the "
        "connects, per connection.",
        "",
        "| model | TCP KiB per connection | TLS KiB per connection | TLS less TCP |",
        "|---|---:|---:|---:|",
    ]
    idle_notes = []
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
                idle_notes.append(f"{m} over {t}: {per[t + '-errors']} errors in that run.")
    # After the table, which a line inside it would break.
    if idle_notes:
        lines += [""] + idle_notes
warnings = sorted({w for f in os.listdir(out) if f.endswith(".json")
                   for w in json.load(open(f"{out}/{f}")).get("warnings", [])})
if warnings:
    lines += ["", "Warnings the reports carry:", ""] + [f"- {w}" for w in warnings]
lines = [l for i, l in enumerate(lines) if l or i == 0 or lines[i - 1]]
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"\nstored in {out}/")
PY
