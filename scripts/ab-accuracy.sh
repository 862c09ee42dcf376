#!/usr/bin/env bash
# How far `echo-bench ab` can be trusted on this machine: the A/A false-positive rate over
# repeated runs of the default comparison, and the detection rate of injected slowdowns
# (the servers' --handicap-ns testing aid) at the default number of pairs.
#
# Usage: [AB_OPTS="--threshold 1"] scripts/ab-accuracy.sh [AA_RUNS] [RUNS_PER_HANDICAP] [HANDICAPS_NS...]
#   defaults: 20 A/A runs, 5 runs per handicap, handicaps 300 600 1000 1500 2500 ns; AB_OPTS go
#   to every `ab` run (and are recorded in the summary).
# Writes every run's JSON and a summary.md to results/ab-accuracy-<date>-<host>-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."

aa_runs=${1:-20}
per_handicap=${2:-5}
shift $(( $# > 2 ? 2 : $# ))
handicaps=("$@")
[ ${#handicaps[@]} -gt 0 ] || handicaps=(300 600 1000 1500 2500)

cargo build --release --locked -q
bin=target/release/echo-bench
# A folder of its own per run of this script, so an earlier one is never overwritten.
out="results/ab-accuracy-$(date -u +%Y-%m-%d)-$(hostname)-$(date -u +%H%M%S)"
mkdir -p "$out"
started=$(date +%s)

for i in $(seq 1 "$aa_runs"); do
    # Exit codes 0 and 1 are both results here; 2 (invalid) is kept and counted too.
    # shellcheck disable=SC2086 # AB_OPTS is a list of options.
    "$bin" ab --base "$bin" --head "$bin" --seed "$i" --quiet --json "$out/aa-$i.json" ${AB_OPTS:-} || true
    echo "A/A $i/$aa_runs done"
done
for ns in "${handicaps[@]}"; do
    for i in $(seq 1 "$per_handicap"); do
        "$bin" ab --base "$bin" --head "$bin" --head-server-arg="--handicap-ns=$ns" \
            --seed "$((1000 + i))" --quiet --json "$out/handicap-$ns-$i.json" ${AB_OPTS:-} || true
        echo "handicap $ns ns $i/$per_handicap done"
    done
done

python3 - "$out" "$aa_runs" "$per_handicap" "$(( $(date +%s) - started ))" "${AB_OPTS:-}" "${handicaps[@]}" <<'PY'
import json, sys, glob, os, statistics
out, aa_runs, per, elapsed, opts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
handicaps = sys.argv[6:]
load = lambda p: json.load(open(p))
env = f"AB_OPTS=\"{opts}\" " if opts else ""
lines = [f"# `echo-bench ab` accuracy on {os.uname().nodename}", "",
         f"Made by `{env}scripts/ab-accuracy.sh {aa_runs} {per} {' '.join(handicaps)}` in {elapsed} s.", ""]
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
              "| benchmark | verdicts | median noise floor | max noise floor | median MDE |", "|---|---|---|---|---|"]
    names = [b["name"] for b in aa[0]["benchmarks"]]
    for name in names:
        bs = [b for r in aa for b in r["benchmarks"] if b["name"] == name]
        verdicts = [b["verdict"] for b in bs]
        floors = [b["noise_floor_pct"] for b in bs if b.get("noise_floor_pct") is not None]
        mdes = [m["change"]["mde_pct"] for b in bs for m in b["metrics"] if m["primary"] and m.get("change")]
        summary = ", ".join(f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts)))
        lines.append(f"| {name} | {summary} | {statistics.median(floors):.2f}% | {max(floors):.2f}% | {statistics.median(mdes):.2f}% |"
                     if floors and mdes else f"| {name} | {summary} | - | - | - |")
    lines.append("")
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
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
