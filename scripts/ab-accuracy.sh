#!/usr/bin/env bash
# How far `echo-bench ab` can be trusted on this machine, timed and counted side by side: the
# A/A false-positive rate over repeated runs of the default comparison, the detection rate of
# injected slowdowns (the servers' --handicap-ns testing aid) at the default number of pairs,
# and, for the counted benchmarks (instructions per message under valgrind), the detection rate
# of a handicap of COUNT_HANDICAP_PCT% of each benchmark's own count (--handicap-instructions,
# sized from the A/A runs' counts, one benchmark at a time).
#
# Usage: [METRIC=both|time|instructions] [AB_OPTS="--threshold 1"] [COUNT_HANDICAP_PCT=0.5]
#        [COUNT_HANDICAP_RUNS=10] scripts/ab-accuracy.sh [AA_RUNS] [RUNS_PER_HANDICAP] [HANDICAPS_NS...]
#   defaults: METRIC both where valgrind is installed (else time), 20 A/A runs, 5 runs per
#   handicap, handicaps 300 600 1000 1500 2500 ns (timed only), counted handicap 0.5% in 10
#   runs per counted benchmark; AB_OPTS go to every `ab` run (and are recorded in the summary).
#   METRIC=instructions measures the counted half alone (counts do not depend on the machine's
#   load, so it may run beside other work; the timed half needs a quiet machine).
#   BEFORE_RUN="cmd": a command run before every `ab` run (e.g. a gate that waits while someone
#   else measures on a shared machine), so a long study keeps out of their way between runs.
# Writes every run's JSON and a summary.md to results/ab-accuracy-<date>-<host>-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."

aa_runs=${1:-20}
per_handicap=${2:-5}
shift $(( $# > 2 ? 2 : $# ))
handicaps=("$@")
[ ${#handicaps[@]} -gt 0 ] || handicaps=(300 600 1000 1500 2500)
if command -v valgrind >/dev/null 2>&1; then metric=${METRIC:-both}; else metric=${METRIC:-time}; fi
count_pct=${COUNT_HANDICAP_PCT:-0.5}
count_runs=${COUNT_HANDICAP_RUNS:-10}
[ "$metric" = instructions ] && handicaps=()

cargo build --release --locked -q
bin=target/release/echo-bench
# A folder of its own per run of this script, so an earlier one is never overwritten.
out="results/ab-accuracy-$(date -u +%Y-%m-%d)-$(hostname)-$(date -u +%H%M%S)"
mkdir -p "$out"
started=$(date +%s)

before_run() { if [ -n "${BEFORE_RUN:-}" ]; then sh -c "$BEFORE_RUN"; fi; }

for i in $(seq 1 "$aa_runs"); do
    before_run
    # Exit codes 0 and 1 are both results here; 2 (invalid) is kept and counted too.
    # shellcheck disable=SC2086 # AB_OPTS is a list of options.
    "$bin" ab --base "$bin" --head "$bin" --metric "$metric" --seed "$i" --quiet --json "$out/aa-$i.json" ${AB_OPTS:-} || true
    echo "A/A $i/$aa_runs done"
done
for ns in "${handicaps[@]+"${handicaps[@]}"}"; do
    for i in $(seq 1 "$per_handicap"); do
        before_run
        "$bin" ab --base "$bin" --head "$bin" --head-server-arg="--handicap-ns=$ns" \
            --seed "$((1000 + i))" --quiet --json "$out/handicap-$ns-$i.json" ${AB_OPTS:-} || true
        echo "handicap $ns ns $i/$per_handicap done"
    done
done
if [ "$metric" != time ] && [ "$count_runs" -gt 0 ]; then
    # Each counted benchmark's handicap: COUNT_HANDICAP_PCT% of its median count in the A/A runs.
    python3 - "$out" "$count_pct" > "$out/count-handicaps.txt" <<'PY'
import glob, json, statistics, sys
out, pct = sys.argv[1], float(sys.argv[2])
counts = {}
for path in glob.glob(f"{out}/aa-*.json"):
    for b in json.load(open(path))["benchmarks"]:
        for m in b["metrics"]:
            if b["name"].startswith("counted:") and m["primary"] and m["base_median"] > 0:
                counts.setdefault(b["name"], []).append(m["base_median"])
for name, values in sorted(counts.items()):
    print(name, max(2, round(statistics.median(values) * pct / 100)))
PY
    while read -r name instructions; do
        slug=$(echo "$name" | tr ':/' '__')
        for i in $(seq 1 "$count_runs"); do
            before_run
            # shellcheck disable=SC2086 # AB_OPTS is a list of options.
            "$bin" ab --base "$bin" --head "$bin" --metric instructions --benchmarks "$name" \
                --head-server-arg="--handicap-instructions=$instructions" \
                --seed "$((2000 + i))" --quiet --json "$out/count-handicap-$slug-$i.json" ${AB_OPTS:-} || true
        done
        echo "counted handicap $name +$instructions instructions: $count_runs runs done"
    done < "$out/count-handicaps.txt"
fi

python3 - "$out" "$aa_runs" "$per_handicap" "$(( $(date +%s) - started ))" "${AB_OPTS:-}" "$metric" "$count_pct" "$count_runs" "$(uptime)" "${handicaps[@]+"${handicaps[@]}"}" <<'PY'
import json, sys, glob, os, statistics
out, aa_runs, per, elapsed, opts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
metric, count_pct, count_runs, load_avg = sys.argv[6], sys.argv[7], int(sys.argv[8]), sys.argv[9]
handicaps = sys.argv[10:]
load = lambda p: json.load(open(p))
env = f"AB_OPTS=\"{opts}\" " if opts else ""
env += f"METRIC={metric} COUNT_HANDICAP_PCT={count_pct} COUNT_HANDICAP_RUNS={count_runs} "
if os.environ.get("BEFORE_RUN"):
    env += f"BEFORE_RUN=\"{os.environ['BEFORE_RUN']}\" "
lines = [f"# `echo-bench ab` accuracy on {os.uname().nodename}", "",
         f"Made by `{env}scripts/ab-accuracy.sh {aa_runs} {per} {' '.join(handicaps)}` in {elapsed} s "
         f"(load at the end: `{load_avg.strip()}`).", ""]
aa = [load(p) for p in sorted(glob.glob(f"{out}/aa-*.json"))]
if aa:
    meta = aa[0]["meta"]
    lines += [f"Machine: {meta['cpu_model']}, {meta['cores']} cores, {meta['memory_mib']} MiB, kernel {meta['kernel']}; "
              f"revision {meta['git_revision']}.", ""]
    exits = [r["exit_code"] for r in aa]
    false_pos = sum(1 for r in aa if any(b["verdict"] == "regressed" for b in r["benchmarks"]))
    times = [r["elapsed_s"] for r in aa]
    lines += ["## A/A (the same build on both sides)", "",
              f"- runs: {len(aa)}; reported a (confirmed) regression: **{false_pos}** "
              f"(false-positive rate {false_pos / len(aa):.0%}); exit codes: "
              + ", ".join(f"{c}×{exits.count(c)}" for c in sorted(set(exits))),
              f"- wall time per run: median {statistics.median(times):.0f} s, max {max(times):.0f} s", "",
              "Timed and counted benchmarks side by side: a `counted:` benchmark's figure is the server's "
              "instructions per message (per connection for churn) under valgrind, its threshold the counted one.", "",
              "| benchmark | metric | verdicts | median noise floor | max noise floor | median MDE |", "|---|---|---|---|---|---|"]
    names = [b["name"] for b in aa[0]["benchmarks"]]
    for name in names:
        bs = [b for r in aa for b in r["benchmarks"] if b["name"] == name]
        verdicts = [b["verdict"] for b in bs]
        floors = [b["noise_floor_pct"] for b in bs if b.get("noise_floor_pct") is not None]
        mdes = [m["change"]["mde_pct"] for b in bs for m in b["metrics"] if m["primary"] and m.get("change")]
        summary = ", ".join(f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts)))
        primary = next((m["metric"] for b in bs for m in b["metrics"] if m["primary"]), "-")
        lines.append(f"| {name} | {primary} | {summary} | {statistics.median(floors):.3f}% | {max(floors):.3f}% | {statistics.median(mdes):.3f}% |"
                     if floors and mdes else f"| {name} | {primary} | {summary} | - | - | - |")
    lines.append("")
    counted_times = [r["elapsed_s"] for r in aa if all(b["name"].startswith("counted:") for b in r["benchmarks"])]
    if counted_times:
        lines += [f"A counted run of the defaults alone took median {statistics.median(counted_times):.0f} s "
                  f"(min {min(counted_times):.0f}, max {max(counted_times):.0f}).", ""]
if handicaps:
    lines += ["## Injected slowdowns (head servers get `--handicap-ns N`: a busy wait per message)", "",
              "Measured change is the primary metric's mean over the runs; detected = runs whose verdict was a confirmed `regressed`.", "",
              "| handicap | benchmark | measured change | detected |", "|---|---|---|---|"]
    for ns in handicaps:
        runs = [load(p) for p in sorted(glob.glob(f"{out}/handicap-{ns}-*.json"))]
        if not runs:
            continue
        for name in [b["name"] for b in runs[0]["benchmarks"]]:
            bs = [b for r in runs for b in r["benchmarks"] if b["name"] == name]
            changes = [m["change"]["change_pct"] for b in bs for m in b["metrics"] if m["primary"] and m.get("change")]
            hit = sum(1 for b in bs if b["verdict"] == "regressed")
            mean = f"{statistics.mean(changes):+.1f}%" if changes else "-"
            lines.append(f"| {ns} ns | {name} | {mean} | {hit}/{len(bs)} |")
    lines.append("")
counted = sorted(glob.glob(f"{out}/count-handicap-*.json"))
if counted:
    sizes = dict(l.split() for l in open(f"{out}/count-handicaps.txt") if l.strip())
    lines += [f"## Counted handicaps (head servers get `--handicap-instructions K`, K = {count_pct}% of the benchmark's A/A count)", "",
              "| benchmark | K (instructions) | measured change | detected |", "|---|---|---|---|"]
    by_name = {}
    for path in counted:
        for b in load(path)["benchmarks"]:
            by_name.setdefault(b["name"], []).append(b)
    for name, bs in sorted(by_name.items()):
        changes = [m["change"]["change_pct"] for b in bs for m in b["metrics"] if m["primary"] and m.get("change")]
        hit = sum(1 for b in bs if b["verdict"] == "regressed")
        mean = f"{statistics.mean(changes):+.3f}%" if changes else "-"
        lines.append(f"| {name} | {sizes.get(name, '?')} | {mean} | {hit}/{len(bs)} |")
    lines.append("")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
