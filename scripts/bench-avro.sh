#!/usr/bin/env bash
# Avro RPC throughput, flume-fast vs Java Flume 1.11 on this machine, one run side by side:
# avro source -> memory channel -> null sink, driven by `flume-fast loadgen` with 100-byte
# events, 1 and 8 connections, batches of 100 and 1000. The agent is pinned to one core
# and loadgen to another (taskset), so each side gets one core.
# Usage: scripts/bench-avro.sh [SECONDS_PER_RUN]   (prints one JSON line per run)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
agent_core="${AGENT_CORE:-0}"
load_core="${LOAD_CORE:-1}"
cargo build --release -q
bin="$PWD/target/release/flume-fast"
scripts/java-flume/fetch.sh
lib="$PWD/scripts/java-flume/lib"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

conf() { # agent-name port
  cat <<CONF
$1.sources = r1
$1.channels = c1
$1.sinks = k1
$1.sources.r1.type = avro
$1.sources.r1.bind = 127.0.0.1
$1.sources.r1.port = $2
$1.sources.r1.channels = c1
$1.channels.c1.type = memory
$1.channels.c1.capacity = 1000000
$1.channels.c1.transactionCapacity = 1000
$1.sinks.k1.type = null
$1.sinks.k1.batchSize = 1000
$1.sinks.k1.channel = c1
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

run_loads() { # label port
  for conns in 1 8; do
    for batch in 100 1000; do
      # A short warm-up (JIT for Java, page faults for both), then the measured run.
      taskset -c "$load_core" "$bin" loadgen -p "$2" -c "$conns" -b "$batch" -s 100 -d 2 >/dev/null 2>&1 || true
      out=$(taskset -c "$load_core" "$bin" loadgen -p "$2" -c "$conns" -b "$batch" -s 100 -d "$secs" 2>/dev/null)
      echo "{\"agent\":\"$1\",${out#\{}"
    done
  done
}

port=$((20000 + RANDOM % 20000))
conf a1 "$port" > "$work/ff.conf"
taskset -c "$agent_core" "$bin" --cores 1 "$work/ff.conf" 2>"$work/ff.log" &
ff=$!
wait_port "$port"
run_loads flume-fast "$port"
kill "$ff"; wait "$ff" || true

port=$((port + 1))
conf j1 "$port" > "$work/j.conf"
printf '<Configuration status="warn"><Appenders><Console name="e" target="SYSTEM_ERR"><PatternLayout pattern="%%m%%n"/></Console></Appenders><Loggers><Root level="warn"><AppenderRef ref="e"/></Root></Loggers></Configuration>\n' > "$work/log4j2.xml"
taskset -c "$agent_core" java -Xmx1g -Dlog4j.configurationFile="$work/log4j2.xml" -cp "$lib/*" \
  org.apache.flume.node.Application -n j1 -f "$work/j.conf" 2>"$work/j.log" &
jf=$!
wait_port "$port"
run_loads java-flume "$port"
kill "$jf"; wait "$jf" || true
