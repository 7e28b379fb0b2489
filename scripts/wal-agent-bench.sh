#!/usr/bin/env bash
# Whole-agent durable throughput: loadgen -> avro source -> file channel (fsync per
# commit, Flume's default) -> null sink, for 100-byte and 1 KiB events, batches of 100 and
# 1000, 1 and 8 connections; the agent (--cores 1) pinned to one core and loadgen to
# another (taskset). In the same run, the disk's own sequential fdatasync bandwidth at the
# same write sizes (benches/wal.rs, disk_fdatasync group), before and after the agent
# runs, so the two compare directly.
# Usage: scripts/wal-agent-bench.sh [SECONDS_PER_RUN] [DIR]
#   DIR: where the channel's files go (default: a temporary directory under target/)
# Prints one JSON line per measurement: the disk's (criterion's units, MiB/s of event
# bodies), one per agent run (loadgen's summary; mb_per_sec is 10^6 bytes of bodies).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
base="${2:-$PWD/target}"
agent_core="${AGENT_CORE:-0}"
load_core="${LOAD_CORE:-1}"
cargo build --release -q
bin="$PWD/target/release/flume-fast"
mkdir -p "$base"
work="$(mktemp -d "$base/wal-agent-bench.XXXXXX")"
agent=""
trap '[ -n "$agent" ] && kill "$agent" 2>/dev/null; rm -rf "$work"' EXIT

conf() { # port data-root
  cat <<CONF
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = avro
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = $1
a1.sources.r1.channels = c1
a1.channels.c1.type = file
a1.channels.c1.checkpointDir = $2/ckpt
a1.channels.c1.dataDirs = $2/data
a1.channels.c1.capacity = 1000000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = null
a1.sinks.k1.batchSize = 1000
a1.sinks.k1.channel = c1
CONF
}

wait_port() {
  for _ in $(seq 1 600); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened" >&2
  return 1
}

# The disk's durable sequential bandwidth for the same write size, on the same disk, right
# before and after the agent runs of that size: on a shared disk it drifts by minutes.
disk() { # case (e.g. 100x1000) label
  FLUME_FAST_BENCH_DIR="$work" cargo bench -q --bench wal -- --exact "disk_fdatasync/$1" 2>&1 | awk -v when="$2" '
    /^disk_fdatasync\// { name = $1 }
    /thrpt:/ && name != "" { sub(/.*thrpt: *\[/, ""); split($0, v, " "); printf "{\"disk_fdatasync\":\"%s\",\"when\":\"%s\",\"body_throughput\":\"%s %s\"}\n", name, when, v[3], v[4]; name = "" }
  '
}

for size in 100 1024; do
  for batch in 100 1000; do
    disk "${size}x${batch}" before
    for conns in 1 8; do
      port=$((20000 + RANDOM % 20000))
      rm -rf "$work/run"
      mkdir -p "$work/run"
      conf "$port" "$work/run" > "$work/agent.conf"
      taskset -c "$agent_core" "$bin" --cores 1 "$work/agent.conf" 2>"$work/agent.log" &
      agent=$!
      wait_port "$port"
      # A short warm-up (page faults, the first segments), then the measured run.
      taskset -c "$load_core" "$bin" loadgen -p "$port" -c "$conns" -b "$batch" -s "$size" -d 1 >/dev/null 2>&1 || true
      out=$(taskset -c "$load_core" "$bin" loadgen -p "$port" -c "$conns" -b "$batch" -s "$size" -d "$secs" 2>/dev/null)
      echo "{\"agent\":\"flume-fast\",\"channel\":\"file\",${out#\{}"
      kill "$agent"
      wait "$agent" || true
      agent=""
    done
    disk "${size}x${batch}" after
  done
done
