#!/usr/bin/env bash
# Benchmark: `upshift run` of N steps of `run = "true"` (journalled with fsync)
# against (a) a bash script running the same N commands and (b) a minimal
# Rust program that spawns the same commands and appends and fsyncs two small
# records per step. All measured in one run, best of RUNS (default 5); prints
# wall times, the ratios, and upshift's peak RSS. Targets at N = 500: within
# 1.25x of (b), within 2x of (a), under 20 MiB.
# With ANSIBLE=1 it also installs ansible-core in a virtualenv (not in CI)
# and times `ansible-playbook -c local` with N `command: true` tasks.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
scripts/setup
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/upshift"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
rustc -O --edition 2021 bench/baseline.rs -o "$dir/baseline"

ansible=""
if [ "${ANSIBLE:-0}" = 1 ]; then
  if python3 -m venv "$dir/venv" >/dev/null 2>&1 && "$dir/venv/bin/pip" install -q ansible-core >/dev/null 2>&1; then
    ansible="$dir/venv/bin/ansible-playbook"
  else
    echo "(ansible-core could not be installed; skipping it)" >&2
  fi
fi

best_ms() { # best wall time in ms of "$@", run $runs times, with a fresh setup each time
  local best=-1 start end ns
  for ((r = 0; r < runs; r++)); do
    rm -rf "$dir/state" "$dir/journal"
    start=$(date +%s%N)
    if ! "$@" > "$dir/out" 2>&1; then
      echo "bench: failed: $*" >&2
      tail -5 "$dir/out" >&2
      exit 1
    fi
    end=$(date +%s%N)
    ns=$((end - start))
    if ((best < 0 || ns < best)); then best=$ns; fi
  done
  awk -v n="$best" 'BEGIN { printf "%.1f", n / 1e6 }'
}

printf '%6s %10s %10s %10s %10s %9s %9s %9s\n' N upshift bash baseline ansible "vs bash" "vs base" "RSS MiB"
for n in 10 100 500; do
  {
    echo 'format = 1'
    echo 'name = "bench"'
    for ((i = 0; i < n; i++)); do printf '[[step]]\nid = "s%d"\nrun = "true"\n' "$i"; done
  } > "$dir/p.toml"
  { echo '#!/bin/bash'; for ((i = 0; i < n; i++)); do echo 'sh -c true'; done; } > "$dir/p.sh"
  up=$(best_ms "$bin" --state-dir "$dir/state" -q run "$dir/p.toml")
  sh=$(best_ms bash "$dir/p.sh")
  base=$(best_ms "$dir/baseline" "$n" "$dir/journal")
  an="-"
  if [ -n "$ansible" ]; then
    { echo '- hosts: localhost'; echo '  gather_facts: false'; echo '  tasks:';
      for ((i = 0; i < n; i++)); do echo "    - command: 'true'"; done; } > "$dir/p.yml"
    # Seconds per run, so once is enough.
    an="$(runs=1 best_ms "$ansible" -c local -i localhost, -e "ansible_python_interpreter=$dir/venv/bin/python" "$dir/p.yml") ms"
  fi
  rm -rf "$dir/state"
  /usr/bin/time -f '%M' -o "$dir/rss" "$bin" --state-dir "$dir/state" -q run "$dir/p.toml" > /dev/null 2>&1
  rss=$(awk '{ printf "%.1f", $1 / 1024 }' "$dir/rss")
  printf '%6d %8s ms %8s ms %8s ms %10s %8.2fx %8.2fx %9s\n' "$n" "$up" "$sh" "$base" "$an" \
    "$(awk -v a="$up" -v b="$sh" 'BEGIN { print a / b }')" "$(awk -v a="$up" -v b="$base" 'BEGIN { print a / b }')" "$rss"
done
