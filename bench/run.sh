#!/usr/bin/env bash
# writ's DNS server and Unbound, side by side, on loopback: the same
# blocked names (writ's orders, Unbound's RPZ zone), the same upstream,
# the same dnsperf query mixes, run in turn (A/B, B/A, ...) so that the
# machine's drift hits both alike. Prints the results as markdown; see
# bench/README.md.
#
#   bench/run.sh           N = 0, 10k and 1M blocked names; about 6 minutes
#   bench/run.sh --quick   N = 10k, one short run of each; under a minute
#
# Installs dnsperf and unbound from Debian when they are missing. Uses
# 127.0.0.1 ports 25353-25355 and 25380; BENCH_DIR keeps the work files
# (default: a new directory under /tmp, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"

quick=0
case "${1:-}" in
  --quick) quick=1 ;;
  "") ;;
  *) echo "usage: bench/run.sh [--quick]" >&2; exit 2 ;;
esac

if ((quick)); then
  sizes=(10000); runs=1; amend_runs=1; secs=2; latsecs=1; lines=150000
else
  sizes=(0 10000 1000000); runs=3; amend_runs=6; secs=4; latsecs=2; lines=400000
fi
# Latency is measured at a fixed rate that both servers sustain, apart
# from the throughput runs: at saturation latency only measures queues.
latrate=20000
up_port=25353 writ_port=25354 unbound_port=25355 http_port=25380
perf=(-s 127.0.0.1 -c 8 -q 256 -t 1)

. bench/lib.sh
bench_install dnsperf=dnsperf unbound=unbound
bench_ports_free $up_port $writ_port $unbound_port $http_port
bench_workdir writ-bench

bench_build $up_port

writ_pid=""
start_writ() { # data-dir
  "$work/writ" serve --data-dir "$1" --dns "127.0.0.1:$writ_port" --http "127.0.0.1:$http_port" \
    --upstream "127.0.0.1:$up_port" --scope "FR=127.0.0.1/32" --log-level warn 2>>"$work/writ.log" &
  writ_pid=$!
  pids+=($writ_pid)
}

unbound_pid=""
start_unbound() { # dir
  cat >"$1/unbound.conf" <<EOF
server:
  interface: 127.0.0.1@$unbound_port
  port: $unbound_port
  do-ip6: no
  do-daemonize: no
  chroot: ""
  username: ""
  pidfile: ""
  directory: "$1"
  logfile: ""
  use-syslog: no
  verbosity: 0
  num-threads: $(nproc)
  so-reuseport: yes
  access-control: 127.0.0.0/8 allow
  module-config: "respip iterator"
  do-not-query-localhost: no
  msg-cache-size: 128m
  rrset-cache-size: 256m
  num-queries-per-thread: 4096
  outgoing-range: 8192
  prefetch: no
  qname-minimisation: no
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$up_port
rpz:
  name: rpz.bench
  zonefile: $1/rpz.zone
EOF
  unbound -d -c "$1/unbound.conf" 2>>"$work/unbound.log" &
  unbound_pid=$!
  pids+=($unbound_pid)
}

# cpu_ticks pid: the processor time the process has used, user and
# system, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# one_run N mix server file: a throughput run, recorded.
one_run() {
  local n=$1 mix=$2 server=$3 file=$4 run=$5 port=$writ_port
  [ "$server" = unbound ] && port=$unbound_port
  dnsperf "${perf[@]}" -p "$port" -d "$file" -l "$secs" >"$work/dnsperf.out" 2>&1
  printf 'qps\t%s\t%s\t%s\t%s\t%s\n' "$n" "$mix" "$server" "$run" "$("$bt" dnsperf "$work/dnsperf.out")" >>"$results"
  log "  N=$n $mix $server: $(awk -F'\t' 'END {print $6 " qps, lost " $8 "%"}' "$results")"
}

lat_run() { # n mix server file
  local port=$writ_port
  [ "$3" = unbound ] && port=$unbound_port
  printf 'lat\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
    "$(dnsperf "${perf[@]}" -p "$port" -d "$4" -l "$latsecs" -Q "$latrate" -v 2>/dev/null | "$bt" latency)" >>"$results"
}

largest=${sizes[${#sizes[@]}-1]}
for n in "${sizes[@]}"; do
  dir="$work/n$n"
  mkdir -p "$dir"
  log "N=$n: generating names, orders, RPZ zone and queries"
  "$bt" gen -n "$n" -dir "$dir" -runs $((runs + 1)) -lines "$lines"
  probe=$(cat "$dir/probe")
  writ_rcode=REFUSED unbound_rcode=NXDOMAIN
  if [ "$n" -eq 0 ]; then writ_rcode=NOERROR unbound_rcode=NOERROR; fi

  log "N=$n: submitting the orders to writ"
  start_writ "$dir/writ-data"
  "$bt" wait -url "http://127.0.0.1:$http_port/healthz" >/dev/null
  "$bt" submit -api "http://127.0.0.1:$http_port" -token "$dir/writ-data/api-token" -dir "$dir" >&2
  stop "$writ_pid"

  # Start-up: from exec to the first blocked answer for the probe name.
  t0=$(date +%s%N)
  start_writ "$dir/writ-data"
  printf 'start\t%s\twrit\t%s\n' "$n" "$("$bt" wait -server "127.0.0.1:$writ_port" -name "$probe" -rcode $writ_rcode -since "$t0")" >>"$results"
  t0=$(date +%s%N)
  start_unbound "$dir"
  printf 'start\t%s\tunbound\t%s\n' "$n" "$("$bt" wait -server "127.0.0.1:$unbound_port" -name "$probe" -rcode $unbound_rcode -since "$t0")" >>"$results"
  log "N=$n: started: $(awk -F'\t' -v n="$n" '$1=="start" && $2==n {printf "%s %s s  ", $3, $4}' "$results")"

  # Warm-up: every allowed name once, so the cached mix is all hits.
  for port in $writ_port $unbound_port; do
    dnsperf "${perf[@]}" -p "$port" -d "$dir/allowed.txt" -n 1 >/dev/null 2>&1
  done

  mixes=(cached blocked mixed)
  [ "$n" -eq 0 ] && mixes=(cached mixed)
  for mix in "${mixes[@]}"; do
    for ((r = 0; r < runs; r++)); do
      file="$dir/q-$mix.txt"
      [ "$mix" = mixed ] && file="$dir/q-mixed-$r.txt"
      # Alternate which server goes first.
      if ((r % 2 == 0)); then order=(writ unbound); else order=(unbound writ); fi
      for server in "${order[@]}"; do one_run "$n" "$mix" "$server" "$file" "$r"; done
    done
    file="$dir/q-$mix.txt"
    [ "$mix" = mixed ] && file="$dir/q-mixed-$runs.txt"
    for server in writ unbound; do lat_run "$n" "$mix" "$server" "$file"; done
  done
  printf 'rss\t%s\twrit\t%s\n' "$n" "$(peak_rss "$writ_pid")" >>"$results"
  printf 'rss\t%s\tunbound\t%s\n' "$n" "$(peak_rss "$unbound_pid")" >>"$results"
  stop "$unbound_pid"

  if [ "$n" = "$largest" ]; then
    # Policy changes must not stall the DNS server: the cached mix with
    # and without a stream of 100 amendments a second, in turn (which
    # goes first alternating), each run with the processor time writ
    # used during it, from which the time the amendments took is known.
    log "N=$n: cached mix while orders are amended"
    for ((r = 0; r < amend_runs; r++)); do
      phases=(steady amending)
      ((r % 2)) && phases=(amending steady)
      for phase in "${phases[@]}"; do
        if [ $phase = amending ]; then
          "$bt" amend -api "http://127.0.0.1:$http_port" -token "$dir/writ-data/api-token" \
            -rate 100 -duration "$((secs + 1))s" >"$work/amend.out" 2>&1 &
          amend_pid=$!
          sleep 0.5
        fi
        cpu0=$(cpu_ticks "$writ_pid")
        dnsperf "${perf[@]}" -p "$writ_port" -d "$dir/q-cached.txt" -l "$secs" >"$work/dnsperf.out" 2>&1
        cpu1=$(cpu_ticks "$writ_pid")
        printf 'amend\t%s\t%s\t%s\t%s\n' "$phase" "$r" "$("$bt" dnsperf "$work/dnsperf.out")" \
          "$(awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" -v s="$secs" 'BEGIN {printf "%.3f", t / hz / s}')" >>"$results"
        log "  $phase: $(awk -F'\t' 'END {print $4 " qps, writ using " $8 " processors"}' "$results")"
        if [ $phase = amending ]; then
          wait "$amend_pid"
          printf 'amendlog\trun %s: %s\n' "$r" "$(cat "$work/amend.out")" >>"$results"
        fi
      done
    done
    # The same at a fixed rate below saturation: does every query still
    # get its answer, as fast, while orders change?
    for phase in steady amending; do
      if [ $phase = amending ]; then
        "$bt" amend -api "http://127.0.0.1:$http_port" -token "$dir/writ-data/api-token" \
          -rate 100 -duration "$((latsecs + 1))s" >"$work/amend.out" 2>&1 &
        amend_pid=$!
        sleep 0.5
      fi
      printf 'amendlat\t%s\t%s\n' "$phase" \
        "$(dnsperf "${perf[@]}" -p "$writ_port" -d "$dir/q-cached.txt" -l "$latsecs" -Q "$latrate" -v 2>/dev/null | "$bt" latency)" >>"$results"
      if [ $phase = amending ]; then wait "$amend_pid"; fi
    done
  fi
  stop "$writ_pid"
done

echo
echo "Machine: $(nproc) vCPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "$(go version | awk '{print $3}'), $(unbound -V | awk 'NR==1 {print "Unbound " $2}'), $(dnsperf -h 2>&1 | awk '/^Version/ {print "dnsperf " $2}')"
echo "Command: bench/run.sh $*; dnsperf ${perf[*]} -l $secs, $runs runs each, in turn; latency at $latrate qps"
echo
"$bt" report "$results"
