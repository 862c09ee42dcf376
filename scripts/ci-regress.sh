#!/usr/bin/env bash
# Paired performance check of a change: builds the merge base and the working tree into separate
# target directories (the base through a temporary git worktree), then runs `echo-bench ab`
# with the head's binary, leaving every report in one folder.
#
# Usage: scripts/ci-regress.sh [BASE_REV] [-- extra `echo-bench ab` options]
#   BASE_REV  compared against the merge base of HEAD and BASE_REV (default: origin/main if it
#             exists, else main). On main itself that is HEAD, so the working tree's
#             uncommitted changes are what is measured.
# Output: $ECHO_BENCH_AB_OUT (default target/ab-report): ab.txt, ab.json, ab.md, bmf.json,
#         github-action.json.
# Metric: $ECHO_BENCH_METRIC (default both): the timed benchmarks and the counted ones (each
#         server's instructions per message under valgrind, installed with apt-get when missing
#         and this user may: root, or sudo without a password). Where valgrind is still missing,
#         `ab` skips the counted benchmarks with one line; that never fails the run.
# Exit code: echo-bench ab's (0 no confirmed regression, 1 confirmed regression, 2 invalid run).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"

base_ref=${1:-}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
if [ -z "$base_ref" ]; then
    if git rev-parse -q --verify origin/main >/dev/null; then base_ref=origin/main; else base_ref=main; fi
fi
base_rev=$(git merge-base HEAD "$base_ref")
out=${ECHO_BENCH_AB_OUT:-target/ab-report}
mkdir -p "$out"

worktree=$(mktemp -d)/base
cleanup() { git worktree remove --force "$worktree" >/dev/null 2>&1 || true; }
trap cleanup EXIT
git worktree add --detach -q "$worktree" "$base_rev"

echo "base: $(git log -1 --format='%h %s' "$base_rev")"
echo "head: $(git log -1 --format='%h %s' HEAD)$(git diff --quiet HEAD || echo ' + uncommitted changes')"
# Separate target directories: the two builds never overwrite each other's artefacts.
cargo build --release --locked -q -p echo-bench \
    --manifest-path "$worktree/Cargo.toml" --target-dir "$root/target/ab-base"
cargo build --release --locked -q -p echo-bench --target-dir "$root/target/ab-head"

metric=${ECHO_BENCH_METRIC:-both}
if [ "$metric" != time ] && ! command -v valgrind >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    as_root=()
    [ "$(id -u)" = 0 ] || as_root=(sudo -n)
    if [ ${#as_root[@]} -eq 0 ] || sudo -n true 2>/dev/null; then
        echo "installing valgrind for the counted benchmarks (apt-get)"
        { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq valgrind; } \
            >/dev/null 2>&1 || echo "valgrind could not be installed: the counted benchmarks will be skipped"
    fi
fi

status=0
target/ab-head/release/echo-bench ab --metric "$metric" \
    --base target/ab-base/release/echo-bench \
    --head target/ab-head/release/echo-bench \
    --json "$out/ab.json" --markdown "$out/ab.md" \
    --bmf "$out/bmf.json" --github-action "$out/github-action.json" \
    "$@" > "$out/ab.txt" || status=$?
cat "$out/ab.txt"
echo "reports in $out/ (exit code $status)"
exit "$status"
