#!/usr/bin/env bash
# Benchmark: a fleet over loopback sshd's. `upshift run` of STEPS steps of
# `true` (default 50) on 1, 4 and 8 hosts, against two floors measured in the
# same run through the same ControlMasters:
#   - serial:   a bash loop of `ssh -S master host true`, step by step, host by host;
#   - parallel: the same, but each step's hosts at once (`&` … `wait`), as upshift runs them.
# Prints wall times (best of RUNS, default 3), the ratios and upshift's
# per-host cost. Target: within 1.2x of the parallel floor, and a per-step
# cost that stays flat as hosts grow. Needs root (it starts sshd's).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-3}"
steps="${STEPS:-50}"
scripts/setup
cargo build --release --locked --quiet
bin="$PWD/target/release/upshift"
dir="$(mktemp -d /tmp/upshift-fleet-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for sock in "$dir"/m*; do [ -S "$sock" ] && ssh -S "$sock" -O exit x 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$dir/client"
printf 'Host *\n  IdentityFile %s/client\n  IdentitiesOnly yes\n  User root\n' "$dir" > "$dir/ssh_config"
: > "$dir/known_hosts"

max=8
for ((h = 1; h <= max; h++)); do
  addr="127.0.0.$((150 + h))"
  port=$(python3 -c "import socket; s=socket.socket(); s.bind(('$addr', 0)); print(s.getsockname()[1])")
  mkdir -p "$dir/h$h"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/h$h/key"
  cp "$dir/client.pub" "$dir/h$h/authorized_keys"
  cat > "$dir/h$h/sshd_config" <<EOF
ListenAddress $addr:$port
HostKey $dir/h$h/key
PidFile $dir/h$h/pid
AuthorizedKeysFile $dir/h$h/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
UsePAM no
StrictModes no
MaxSessions 50
LogLevel ERROR
EOF
  /usr/sbin/sshd -D -e -f "$dir/h$h/sshd_config" 2>/dev/null &
  pids+=($!)
  echo "[$addr]:$port $(cut -d' ' -f1,2 "$dir/h$h/key.pub")" >> "$dir/known_hosts"
  echo "$addr $port" > "$dir/h$h/address"
done
sleep 1

opts=(-F "$dir/ssh_config" -o BatchMode=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$dir/known_hosts")

best_ms() { # best wall time in ms of "$@", run $runs times
  local best=-1 start end ns
  for ((r = 0; r < runs; r++)); do
    rm -rf "$dir/state"
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
  awk -v n="$best" 'BEGIN { printf "%.0f", n / 1e6 }'
}

printf '%5s %6s %11s %11s %11s %9s %9s %14s\n' hosts steps upshift serial parallel "vs ser" "vs par" "ms/step/host"
for n in 1 4 8; do
  mkdir -p "$dir/p$n/environments"
  {
    echo 'format = 1'
    echo 'name = "fleet-bench"'
    for ((i = 0; i < steps; i++)); do printf '[[step]]\nid = "s%d"\nrun = "true"\n' "$i"; done
  } > "$dir/p$n/p.toml"
  {
    for ((h = 1; h <= n; h++)); do
      read -r addr port < "$dir/h$h/address"
      printf '[hosts.h%d]\nssh = "root@%s:%s"\nstate_dir = "%s/h%d/state"\n' "$h" "$addr" "$port" "$dir" "$h"
    done
    printf '[ssh]\nconfig = "%s/ssh_config"\nknown_hosts = "%s/known_hosts"\n[fleet]\nparallel = %d\n' "$dir" "$dir" "$n"
  } > "$dir/p$n/environments/bench.toml"
  # The floors: one master per host, then the same calls by hand.
  for ((h = 1; h <= n; h++)); do
    read -r addr port < "$dir/h$h/address"
    ssh "${opts[@]}" -M -N -f -S "$dir/m$h" -o ControlPersist=60 -p "$port" "$addr"
  done
  {
    echo '#!/bin/bash'
    for ((i = 0; i < steps; i++)); do
      for ((h = 1; h <= n; h++)); do
        read -r addr port < "$dir/h$h/address"
        echo "ssh ${opts[*]} -S $dir/m$h -o ControlMaster=no -p $port $addr true"
      done
    done
  } > "$dir/serial$n.sh"
  {
    echo '#!/bin/bash'
    for ((i = 0; i < steps; i++)); do
      for ((h = 1; h <= n; h++)); do
        read -r addr port < "$dir/h$h/address"
        echo "ssh ${opts[*]} -S $dir/m$h -o ControlMaster=no -p $port $addr true &"
      done
      echo wait
    done
  } > "$dir/parallel$n.sh"
  up=$(best_ms "$bin" --state-dir "$dir/state" -q run "$dir/p$n/p.toml" --env bench)
  ser=$(best_ms bash "$dir/serial$n.sh")
  par=$(best_ms bash "$dir/parallel$n.sh")
  for ((h = 1; h <= n; h++)); do ssh -S "$dir/m$h" -O exit x 2>/dev/null || true; done
  printf '%5d %6d %9s ms %8s ms %8s ms %8.2fx %8.2fx %14.1f\n' "$n" "$steps" "$up" "$ser" "$par" \
    "$(awk -v a="$up" -v b="$ser" 'BEGIN { print a / b }')" \
    "$(awk -v a="$up" -v b="$par" 'BEGIN { print a / b }')" \
    "$(awk -v a="$up" -v s="$steps" -v h="$n" 'BEGIN { print a / s / h }')"
done
