#!/usr/bin/env bash
# Copies Java Flume 1.11.0 and its dependencies from Maven Central into lib/ next to this
# script (git-ignored), and the Hadoop client its HDFS sink needs into lib-hdfs/ (only
# the HDFS benchmark runs put it on the classpath). Idempotent: does nothing for a
# directory that is already complete.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fetch() { # pom, directory
  if [[ -f "$here/$2/.complete" ]]; then
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
  touch "$here/$2/.complete"
}
fetch pom.xml lib
fetch pom-hdfs.xml lib-hdfs
