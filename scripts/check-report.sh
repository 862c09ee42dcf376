#!/usr/bin/env bash
# Checks a run's index.html in a real browser: opens it in headless Chromium, fails (exit 1) if
# the page's script did not finish, any script or console error occurred, or the verdict matrix
# is missing or below the advice, and saves a screenshot of the top of the page (the matrix)
# at 1400 px wide.
#
#   scripts/check-report.sh [RUN_DIR] [--store]
#
# RUN_DIR defaults to the newest run (results/latest). The screenshot goes to
# target/check-report/<run>.png; with --store it is stored beside the run as screenshot.png
# (how the reference run's screenshot, shown in the README, was made). Chromium is Debian's
# package: installed here with apt-get when missing and run as root; otherwise the check skips
# with a note (exit 0). Exit 2: no such run or page.
set -euo pipefail
cd "$(dirname "$0")/.."

run="" store=0
for arg in "$@"; do
  case "$arg" in
    --store) store=1 ;;
    -*) echo "check-report: unknown option $arg (usage: check-report.sh [RUN_DIR] [--store])" >&2; exit 2 ;;
    *) run="$arg" ;;
  esac
done
if [ -z "$run" ]; then
  [ -f results/latest ] || { echo "check-report: no results/latest; name a run folder" >&2; exit 2; }
  run="results/$(cat results/latest)"
fi
page="$run/index.html"
[ -f "$page" ] || { echo "check-report: no $page (echo-bench report $run writes it)" >&2; exit 2; }

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "check-report: installing Debian's chromium" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  browser=$(command -v chromium || true)
fi
if [ -z "$browser" ]; then
  echo "check-report: SKIP: Chromium is not installed (apt-get install chromium)" >&2
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
url="file://$(realpath "$page")"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run
       --user-data-dir="$work/profile" --enable-logging=stderr --v=0)

timeout 120 "$browser" "${flags[@]}" --virtual-time-budget=5000 --dump-dom "$url" \
  >"$work/dom.html" 2>"$work/dom.log"
failed=0
if ! grep -q 'data-ready="1"' "$work/dom.html"; then
  echo "check-report: FAIL: the page's script did not finish (no data-ready on <html>)"
  failed=1
fi
if grep -o 'data-errors="[0-9]*"' "$work/dom.html"; then
  echo "check-report: FAIL: the page recorded script errors"
  failed=1
fi
if grep -E 'CONSOLE.*(Uncaught|Error|error)' "$work/dom.log"; then
  echo "check-report: FAIL: console errors"
  failed=1
fi
# The first screen is the verdict matrix, above the advice's prose (pages drawn before it
# existed have none: redraw them with `echo-bench report RUN_DIR`).
verdicts=$(grep -bo '<section id="verdicts"' "$work/dom.html" | head -1 | cut -d: -f1 || true)
advice=$(grep -bo '<section id="advice"' "$work/dom.html" | head -1 | cut -d: -f1 || true)
if [ -z "$verdicts" ]; then
  echo "check-report: FAIL: no verdict matrix (<section id=\"verdicts\">) on the page"
  failed=1
elif [ -n "$advice" ] && [ "$verdicts" -gt "$advice" ]; then
  echo "check-report: FAIL: the verdict matrix comes after the advice"
  failed=1
fi

mkdir -p target/check-report
shot="target/check-report/$(basename "$run").png"
timeout 120 "$browser" "${flags[@]}" --window-size=1400,2400 --screenshot="$(realpath -m "$shot")" \
  "$url" >/dev/null 2>"$work/shot.log"
if [ "$store" = 1 ]; then
  cp "$shot" "$run/screenshot.png"
  shot="$run/screenshot.png"
fi
charts=$(grep -o '<svg' "$work/dom.html" | wc -l)
tables=$(grep -o '<table' "$work/dom.html" | wc -l)
leading=$(grep -o '<td class="lead"' "$work/dom.html" | wc -l)
echo "check-report: $page: $tables tables, $charts charts, $leading leading cells in the verdict matrix, screenshot $shot"
[ "$failed" = 0 ] && echo "check-report: PASS: no script or console errors" || exit 1
