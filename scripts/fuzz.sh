#!/usr/bin/env bash
# Runs every fuzz target in the module for a short while ($1, default 5s).
set -euo pipefail
t=${1:-5s}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for fz in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz $pkg $fz ($t)"
    # Go's fuzzer can report "context deadline exceeded" when -fuzztime runs
    # out while it is still minimizing a new interesting input; that is no
    # finding (a finding writes "Failing input written to testdata/..."), so
    # it gets one more run.
    for try in 1 2; do
      if go test -run '^$' -fuzz "^${fz}\$" -fuzztime "$t" "$pkg" >/tmp/fuzz.$$.log 2>&1; then break; fi
      if [ "$try" = 1 ] && grep -q 'context deadline exceeded' /tmp/fuzz.$$.log && ! grep -q 'Failing input written' /tmp/fuzz.$$.log; then
        echo "fuzz $pkg $fz: deadline hit while minimizing, running again"; continue
      fi
      cat /tmp/fuzz.$$.log; exit 1
    done
  done
done
