#!/usr/bin/env bash
# Runs writ's whole test suite on a fresh Debian machine with Go:
# installs what the tests need, then checks formatting, vets, and runs
# every test with the race detector. Exit status 0 means everything passed.
#
#   ./test.sh                the whole suite, with every fuzz target for 10s
#   FUZZTIME=1m ./test.sh    fuzz longer
#   ./test.sh -run X         extra arguments go to go test (no fuzzing)
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the tests use, as "command package" pairs: the race
# detector needs a C compiler; integration tests drive real resolvers
# (unbound, BIND and its tools), a real proxy (nginx), a real browser and
# a real PostgreSQL (started by the tests themselves, on loopback).
required=(
  "gcc gcc"
  "unbound unbound"
  "named bind9"
  "named-checkzone bind9-utils"
  "dig bind9-dnsutils"
  "nginx nginx"
  "chromium chromium"
)

missing=()
# PostgreSQL's server programs are not on PATH in Debian.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
for pair in "${required[@]}"; do
  read -r cmd pkg <<<"$pair"
  PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Tests start their own servers on loopback; keep Debian from starting
  # the packaged daemons while installing.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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

# Each fuzz target for a bounded time (FUZZTIME, default 10s); the seed
# corpora and every crasher found so far already ran with go test. Skipped
# when go test was given arguments (a focused run).
if (($# == 0)); then
  echo "== fuzz"
  scripts/fuzz.sh "${FUZZTIME:-10s}"
fi
