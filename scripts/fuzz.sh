#!/usr/bin/env bash
# Runs every cargo-fuzz target in bench/fuzz for SECONDS each (default 30), seeding each corpus
# from bench/fuzz/seeds (cut-down stored files) on its first run. Installs cargo-fuzz (crates.io)
# when missing. Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the -Z flags it
# needs (sanitizer, coverage instrumentation). A crash leaves its input in
# bench/fuzz/artifacts/TARGET/ and exits non-zero.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (targets: endpoint run_json ab_report history merge)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(endpoint run_json ab_report history merge)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

corpus=bench/fuzz/corpus
for target in "${targets[@]}"; do
    # Seeded from bench/fuzz/seeds/TARGET (stored files, cut down) on the first run.
    mkdir -p "$corpus/$target"
    if [ -z "$(ls -A "$corpus/$target")" ]; then
        cp bench/fuzz/seeds/"$target"/* "$corpus/$target/"
    fi
done

for target in "${targets[@]}"; do
    echo "== $target, ${seconds} s"
    nice cargo fuzz run --fuzz-dir bench/fuzz "$target" "$corpus/$target" -- \
        -max_total_time="$seconds" -max_len=262144 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
