#!/usr/bin/env bash
# Copies from Maven Central, next to this script (git-ignored):
#   flume       Java Flume 1.11.0 and its dependencies into lib/;
#   hdfs        the Hadoop client its HDFS sink needs into lib-hdfs/ (only the HDFS
#               benchmark runs put it on the classpath);
#   avro-tools  Avro's own tools jar into lib-avro-tools/ (the Java reader of the Avro
#               containers flume-fast writes).
# Usage: fetch.sh [flume|hdfs|avro-tools]...  (no argument: flume and hdfs). Idempotent:
# does nothing for a directory that is complete for its pom as it is now (.complete
# holds the pom's checksum, so a dependency added later is fetched).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fetch() { # pom, directory
  local sum
  sum=$(sha256sum "$here/$1" | cut -d' ' -f1)
  if [[ -f "$here/$2/.complete" && "$(cat "$here/$2/.complete")" == "$sum" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || { echo "fetch.sh: mvn not found" >&2; exit 1; }
  rm -rf "$here/$2"
  # mvn -q still writes colour resets to stdout: show its output only if it fails.
  local out
  if ! out=$(mvn -q -B -f "$here/$1" dependency:copy-dependencies \
    -DoutputDirectory="$here/$2" -DincludeScope=runtime 2>&1); then
    echo "$out" >&2
    exit 1
  fi
  echo "$sum" >"$here/$2/.complete"
}
(( $# )) || set -- flume hdfs
for what in "$@"; do
  case "$what" in
    flume) fetch pom.xml lib ;;
    hdfs) fetch pom-hdfs.xml lib-hdfs ;;
    avro-tools) fetch pom-avro-tools.xml lib-avro-tools ;;
    *) echo "fetch.sh: unknown '$what' (flume, hdfs, avro-tools)" >&2; exit 2 ;;
  esac
done
