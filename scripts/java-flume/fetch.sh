#!/usr/bin/env bash
# Copies Java Flume 1.11.0 and its dependencies from Maven Central into lib/ next to this
# script (git-ignored). Idempotent: does nothing when lib/ is already complete.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ -f "$here/lib/.complete" ]]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "fetch.sh: mvn not found" >&2; exit 1; }
rm -rf "$here/lib"
mvn -q -f "$here/pom.xml" dependency:copy-dependencies \
  -DoutputDirectory="$here/lib" -DincludeScope=runtime
touch "$here/lib/.complete"
