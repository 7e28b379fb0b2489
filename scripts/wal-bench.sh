#!/usr/bin/env bash
# The file channel's durable put throughput next to the disk's own sequential fdatasync
# bandwidth at the same write size, measured in one run (benches/wal.rs).
# Usage: scripts/wal-bench.sh [DIR]   (DIR: where the files go; default under target/)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then export FLUME_FAST_BENCH_DIR="$1"; fi
cargo bench --bench wal 2>&1 | awk '
  /^(wal_put_commit|disk_fdatasync)\// { name = $1 }
  /thrpt:/ && name != "" { sub(/.*thrpt: *\[/, ""); split($0, v, " "); printf "%-45s %10s %s\n", name, v[3], v[4]; name = "" }
'
