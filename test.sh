#!/usr/bin/env bash
# Runs writ's whole test suite on a fresh Debian machine with Go:
# installs what the tests need, then checks formatting, vets, and runs
# every test with the race detector. Exit status 0 means everything passed.
#
#   ./test.sh            the whole suite
#   ./test.sh -run X    extra arguments go to go test
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the tests use, as "command package" pairs. The race
# detector needs a C compiler.
required=(
  "gcc gcc"
)

missing=()
for pair in "${required[@]}"; do
  read -r cmd pkg <<<"$pair"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "test.sh: Go is not installed (https://go.dev/doc/install)" >&2; exit 1; }

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
CGO_ENABLED=1 go test -race -count=1 "$@" ./...
