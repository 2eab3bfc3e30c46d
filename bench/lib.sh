# Shared by the benchmark scripts (bench/run.sh, bench/others.sh): sourced,
# not run. Each function says what it needs.

# bench_install CMD=PACKAGE...: installs from Debian the package of each
# command that is missing, without letting Debian start any packaged
# service (an unbound on port 53, say).
bench_install() {
  local missing=() sudo="" created=0 spec
  for spec in "$@"; do
    command -v "${spec%%=*}" >/dev/null || missing+=("${spec#*=}")
  done
  ((${#missing[@]})) || return 0
  echo "bench: installing ${missing[*]}" >&2
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    created=1
  fi
  local rc=0
  { $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
  ((created)) && $sudo rm -f /usr/sbin/policy-rc.d
  return $rc
}

# bench_ports_free PORT...: fails, naming it, if a port is already in use
# on this machine.
bench_ports_free() {
  command -v ss >/dev/null || return 0
  local listening p
  listening=$(ss -Hlntu | awk '{print $5}')
  for p in "$@"; do
    if grep -q ":$p\$" <<<"$listening"; then
      echo "bench: port $p is in use" >&2
      return 1
    fi
  done
}

# bench_workdir PREFIX: sets work to BENCH_DIR, or to a new directory
# under /tmp removed at the end, and arms the cleanup: every pid in pids
# is killed on exit.
bench_workdir() {
  work=${BENCH_DIR:-}
  if [ -z "$work" ]; then
    work=$(mktemp -d "/tmp/$1.XXXXXX")
    remove_work=1
  else
    mkdir -p "$work"
    remove_work=0
  fi
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ((remove_work)) && rm -rf "$work"
  return 0
}

log() { echo "bench [${SECONDS}s]: $*" >&2; }

# bench_build: builds writ and benchtool into work, sets bt to benchtool
# and results to an empty results file there, and starts the upstream
# on 127.0.0.1:PORT (its pid in pids).
bench_build() {
  log "building writ and benchtool"
  go build -o "$work/writ" ./cmd/writ
  go build -o "$work/benchtool" ./bench/cmd/benchtool
  bt="$work/benchtool"
  results="$work/results.tsv"
  : >"$results"
  "$bt" upstream -addr "127.0.0.1:$1" &
  pids+=($!)
}

stop() { # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

peak_rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
