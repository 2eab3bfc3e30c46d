#!/usr/bin/env bash
# Runs every fuzz target of writ (each `func FuzzX(f *testing.F)` in a
# test file) with `go test -fuzz`, one after another, for a bounded
# time each, and stops at the first failure. A crasher is written by go
# test to testdata/fuzz/FuzzX/ in the target's package: fix the bug and
# keep the file there as a regression test.
#
#   scripts/fuzz.sh            10s per target (or $FUZZTIME)
#   scripts/fuzz.sh 5m         five minutes per target
#   FUZZTIME=20s scripts/fuzz.sh
#
# The time is anything -fuzztime takes: a duration, or a count such as
# 10000x. The seed corpora alone run with every `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${1:-${FUZZTIME:-10s}}

# Targets as "package function" pairs, from the test files.
targets=()
while IFS= read -r file; do
  pkg=./$(dirname "${file#./}")
  while IFS= read -r name; do
    targets+=("$pkg $name")
  done < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$file")
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./.git/' | sort)

if ((${#targets[@]} == 0)); then
  echo "fuzz.sh: no fuzz targets found" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, $fuzztime each"

for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== $pkg $name ($fuzztime)"
  start=$(date +%s)
  if ! go test "$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime"; then
    echo "fuzz.sh: $pkg $name FAILED after $(($(date +%s) - start))s; the failing input is in $pkg/testdata/fuzz/$name/" >&2
    exit 1
  fi
  echo "== $pkg $name passed in $(($(date +%s) - start))s"
done
echo "fuzz.sh: all ${#targets[@]} targets passed"
