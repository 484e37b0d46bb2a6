#!/usr/bin/env bash
# Benchmark: `validate`, `plan`, `plan --out` (a saved plan) and `plan --check`
# of a generated N-step playbook (default 10,000; each step
# `run = "echo {{ i }}"` with a `when` guard and a rollback).
# Prints the best wall time of RUNS runs (default 10) and the highest peak RSS
# of the whole process. Targets: each under 150 ms and 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
runs="${RUNS:-10}"
scripts/setup
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/upshift"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
{
  echo 'format = 1'
  echo 'name = "bench"'
  echo '[vars]'
  echo 'enabled = true'
  for ((i = 0; i < n; i++)); do
    printf '[[step]]\nid = "s%d"\nwhen = "enabled and %d >= 0"\nrun = "echo {{ %d }}"\nrollback = "echo undo {{ %d }}"\n' "$i" "$i" "$i" "$i"
  done
} > "$dir/bench.toml"

measure() {
  local label="$1"
  shift
  local best_ns=999999999999 peak_kib=0 start end ns kib
  for ((r = 0; r < runs; r++)); do
    start=$(date +%s%N)
    "$bin" "$@" > /dev/null 2>&1
    end=$(date +%s%N)
    ns=$((end - start))
    if ((ns < best_ns)); then best_ns=$ns; fi
    /usr/bin/time -f '%M' -o "$dir/time" "$bin" "$@" > /dev/null 2>&1
    read -r kib < "$dir/time"
    if ((kib > peak_kib)); then peak_kib=$kib; fi
  done
  printf '%-12s %6d steps  %6.1f ms  %6.1f MiB peak RSS\n' "$label" "$n" \
    "$(awk -v n="$best_ns" 'BEGIN { print n / 1e6 }')" "$(awk -v k="$peak_kib" 'BEGIN { print k / 1024 }')"
}

echo "upshift $("$bin" --version | cut -d' ' -f2), best of $runs runs, $(nproc) cores"
measure validate validate "$dir/bench.toml"
measure plan plan "$dir/bench.toml"
measure "plan --out" plan "$dir/bench.toml" --out "$dir/plan.json"
measure "plan --check" plan --check "$dir/plan.json"
echo "plan file: $(($(stat -c %s "$dir/plan.json") / 1024)) KiB"
