#!/usr/bin/env bash
# Loads one echo server from several machines at once and merges what they measured.
#
#   scripts/multi-agent.sh --target HOST:PORT [--start-in SECONDS] [--out DIR] AGENT... [-- RUN_OPTIONS...]
#
# Each AGENT is an ssh destination with `echo-bench` on its PATH (`cargo install --path bench`;
# set ECHO_BENCH to another path on the agents). GNU parallel starts `echo-bench run` on every
# agent over ssh, all with the same `--start-at` (now + --start-in, default 15 s: time for ssh to
# connect everywhere), so their measured windows open together; the agents' clocks must agree
# (NTP). RUN_OPTIONS go to every agent's `run` (for example `--connections 5000 --duration 30s`).
# Then it copies each agent's JSON report back into DIR (default target/multi-agent/<time>/) and
# runs `echo-bench merge` over them: DIR/merged.json and the summary on stdout. `echo-bench
# merge` warns when the windows did not overlap.
#
# SSH and SCP name the commands used (default ssh and scp). GNU parallel is installed with
# apt-get when missing and run as root; otherwise the script stops with a note (exit 2).
# Exit: merge's code (0 clean, 1 an agent saw errors), 2 on bad usage or a missing tool.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "multi-agent: $1 (usage: multi-agent.sh --target HOST:PORT [--start-in S] [--out DIR] AGENT... [-- RUN_OPTIONS...])" >&2; exit 2; }
target="" start_in=15 out="" agents=() run_opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="${2:-}"; shift 2 ;;
    --start-in) start_in="${2:-}"; shift 2 ;;
    --out) out="${2:-}"; shift 2 ;;
    --) shift; run_opts=("$@"); break ;;
    -*) usage "unknown option $1" ;;
    *) agents+=("$1"); shift ;;
  esac
done
[ -n "$target" ] || usage "--target is required"
[ "${#agents[@]}" -ge 2 ] || usage "name at least two agents"
[[ "$start_in" =~ ^[0-9]+$ ]] || usage "--start-in takes whole seconds"

if ! command -v parallel >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q parallel >/dev/null
  else
    echo "multi-agent: GNU parallel is not installed (apt-get install parallel)" >&2
    exit 2
  fi
fi
ssh_cmd=${SSH:-ssh} scp_cmd=${SCP:-scp} remote_bin=${ECHO_BENCH:-echo-bench}
out=${out:-target/multi-agent/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
start_at=$(( $(date +%s) + start_in ))
# {#}: the agent's number in the list, the same in both parallel calls below.
remote_json="/tmp/echo-bench-agent-$start_at-{#}.json"
opts=$(printf ' %q' "${run_opts[@]+"${run_opts[@]}"}")
echo "multi-agent: ${#agents[@]} agents against $target, measured windows open at $start_at (in ${start_in} s)" >&2

# Every agent at once (--jobs 0), each line tagged with its agent; a failed agent does not stop
# the others, and merge still says what the rest measured.
parallel --jobs 0 --tag --line-buffer \
  "$ssh_cmd" {} "$remote_bin run --target $target --start-at $start_at --json $remote_json -q$opts" \
  ::: "${agents[@]}" || echo "multi-agent: some agent exited non-zero (errors, or it could not run)" >&2
parallel --jobs 0 "$scp_cmd" {}:"$remote_json" "$out"/{}.json ::: "${agents[@]}"

bin=${LOCAL_ECHO_BENCH:-target/release/echo-bench}
[ -x "$bin" ] || cargo build --release -q -p echo-bench
reports=()
for agent in "${agents[@]}"; do reports+=("$out/$agent.json"); done
set +e
"$bin" merge "${reports[@]}" --json "$out/merged.json"
code=$?
echo "multi-agent: reports and merged.json in $out" >&2
exit $code
