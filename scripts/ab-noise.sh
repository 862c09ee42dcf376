#!/usr/bin/env bash
# This machine's A/A noise for `echo-bench ab`, sequential pairs against duet pairs: the same
# build on both sides, the default benchmarks, one seed. Writes both JSON reports, their tables
# and a README.md with the commands and the machine to results/ab-noise-<date>-<host>/.
#
# Usage: scripts/ab-noise.sh [SEED]   (default seed 11)
set -euo pipefail
cd "$(dirname "$0")/.."
seed=${1:-11}
cargo build --release --locked -q -p echo-bench
bin=target/release/echo-bench
out="results/ab-noise-$(date -u +%Y-%m-%d)-$(hostname)"
mkdir -p "$out"
seq_cmd=("$bin" ab --base "$bin" --head "$bin" --sequential --seed "$seed" --json "$out/sequential.json")
duet_cmd=("$bin" ab --base "$bin" --head "$bin" --seed "$seed" --json "$out/duet.json")
# Exit codes 0 and 1 are both results here (an A/A run may be inconclusive or, rarely, flag).
"${seq_cmd[@]}" > "$out/sequential.txt" || true
"${duet_cmd[@]}" > "$out/duet.txt" || true
{
    echo "# A/A noise of \`echo-bench ab\`: sequential against duet pairs"
    echo
    echo "Written by \`scripts/ab-noise.sh $seed\`; do not edit."
    echo
    echo "- Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, kernel $(uname -r), host $(hostname)"
    echo "- Build: $("$bin" --version), git $(git rev-parse --short=12 HEAD)"
    echo "- When: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- Sequential pairs: \`${seq_cmd[*]}\` → \`sequential.json\`, table in \`sequential.txt\`"
    echo "- Duet pairs (the default): \`${duet_cmd[*]}\` → \`duet.json\`, table in \`duet.txt\`"
    echo
    echo "## Sequential"
    echo
    echo '```'
    cat "$out/sequential.txt"
    echo '```'
    echo
    echo "## Duet"
    echo
    echo '```'
    cat "$out/duet.txt"
    echo '```'
} > "$out/README.md"
echo "wrote $out"
