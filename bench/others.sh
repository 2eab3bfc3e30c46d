#!/usr/bin/env bash
# writ's DNS server beside CoreDNS and Blocky, on loopback: the same
# blocked names, the same upstream and the same dnsperf query mixes as
# bench/run.sh, each server run in turn (the order rotating from round to
# round) so that the machine's drift hits all alike. Prints the results as
# markdown; see bench/README.md for the mixes and the upstream.
#
#   COREDNS=/path/to/coredns BLOCKY=/path/to/blocky bench/others.sh
#       N = 10k and 1M blocked names; about 5 minutes
#   COREDNS=... BLOCKY=... bench/others.sh --quick
#       N = 10k, one short run of each; under a minute
#
# Neither CoreDNS nor Blocky is built here: COREDNS and BLOCKY name
# binaries built elsewhere, and whichever is not given is left out.
#
# How each one blocks the generated names (writ's orders):
#
#   - writ: the orders, submitted over its API; a blocked name, or a name
#     below one blocked with its subdomains (at any depth), is answered
#     REFUSED with EDE 16 and the order's JSON.
#   - CoreDNS: the hosts plugin, from a hosts file of "0.0.0.0 name" lines
#     and "0.0.0.0 *.name" for the names blocked with their subdomains;
#     a blocked name is answered NOERROR with A 0.0.0.0 (AAAA and other
#     types: NOERROR, no data). The plugin's wildcard matches exactly one
#     label: www.name is blocked, a.www.name is not (it is forwarded).
#     The mixes only ask www.name below such names. cache comes before
#     hosts in CoreDNS's plugin order, so blocked answers are cached too;
#     multisocket gives it one SO_REUSEPORT socket per processor.
#   - Blocky: a denylist read from a local file, "name" for a name alone
#     (an exact match) and "*.name" for a name with its subdomains (the
#     name and everything below it, at any depth); blockType nxDomain, so
#     a blocked name is answered NXDOMAIN with an SOA. Query logging off,
#     caching on (its default), no list refresh.
#
# All three forward to the same upstream and cache its answers. Nothing
# leaves 127.0.0.1: CoreDNS's only upstream is the benchmark's; Blocky's
# upstream and bootstrap server are the benchmark's too, its lists are
# local files, and the test query it sends each upstream at start-up
# (example.com) goes to that upstream as well, in the background.
#
# Installs dnsperf and dig from Debian when they are missing. Uses
# 127.0.0.1 ports 27353-27356 and 27380; BENCH_DIR keeps the work files
# (default: a new directory under /tmp, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"

quick=0
case "${1:-}" in
  --quick) quick=1 ;;
  "") ;;
  *) echo "usage: [COREDNS=path] [BLOCKY=path] bench/others.sh [--quick]" >&2; exit 2 ;;
esac

COREDNS=${COREDNS:-} BLOCKY=${BLOCKY:-}
servers=(writ)
if [ -n "$COREDNS" ]; then
  [ -x "$COREDNS" ] || { echo "bench: COREDNS=$COREDNS is not an executable file" >&2; exit 1; }
  servers+=(coredns)
else
  echo "bench: COREDNS is not set; leaving CoreDNS out" >&2
fi
if [ -n "$BLOCKY" ]; then
  [ -x "$BLOCKY" ] || { echo "bench: BLOCKY=$BLOCKY is not an executable file" >&2; exit 1; }
  servers+=(blocky)
else
  echo "bench: BLOCKY is not set; leaving Blocky out" >&2
fi
if ((${#servers[@]} == 1)); then
  echo "bench: nothing to compare writ with: set COREDNS=/path/to/coredns and/or BLOCKY=/path/to/blocky" >&2
  exit 1
fi

if ((quick)); then
  sizes=(10000); runs=1; secs=2; lines=150000
else
  sizes=(10000 1000000); runs=3; secs=4; lines=400000
fi
up_port=27353 writ_port=27354 coredns_port=27355 blocky_port=27356 http_port=27380
perf=(-s 127.0.0.1 -c 8 -q 256 -t 1)

. bench/lib.sh
bench_install dnsperf=dnsperf dig=bind9-dnsutils
bench_ports_free $up_port $writ_port $coredns_port $blocky_port $http_port
bench_workdir writ-others

bench_build $up_port


port_of() {
  case $1 in
    writ) echo $writ_port ;;
    coredns) echo $coredns_port ;;
    blocky) echo $blocky_port ;;
  esac
}

# The answer each gives the probe, the last blocked name, once its names
# are in force. CoreDNS answers NOERROR either way, but only once its
# hosts file is read: the plugin reads it before the server listens.
declare -A blocked_rcode=([writ]=REFUSED [coredns]=NOERROR [blocky]=NXDOMAIN)
declare -A pid_of=()

start_writ() { # dir
  "$work/writ" serve --data-dir "$1/writ-data" --dns "127.0.0.1:$writ_port" --http "127.0.0.1:$http_port" \
    --upstream "127.0.0.1:$up_port" --scope "FR=127.0.0.1/32" --log-level warn 2>>"$work/writ.log" &
  pid_of[writ]=$!
  pids+=($!)
}

start_coredns() { # dir
  cat >"$1/Corefile" <<EOF
.:$coredns_port {
  bind 127.0.0.1
  multisocket
  cache 3600 {
    success 1000000
    denial 100000
  }
  hosts $1/blocked.hosts {
    reload 0
    no_reverse
    fallthrough
  }
  forward . 127.0.0.1:$up_port
}
EOF
  "$COREDNS" -conf "$1/Corefile" -quiet >>"$work/coredns.log" 2>&1 &
  pid_of[coredns]=$!
  pids+=($!)
}

start_blocky() { # dir
  cat >"$1/blocky.yml" <<EOF
ports:
  dns: 127.0.0.1:$blocky_port
connectIPVersion: v4
upstreams:
  init:
    strategy: fast
  groups:
    default:
      - 127.0.0.1:$up_port
bootstrapDns:
  - upstream: 127.0.0.1:$up_port
blocking:
  denylists:
    orders:
      - $1/blocked.list
  clientGroupsBlock:
    default:
      - orders
  blockType: nxDomain
  loading:
    refreshPeriod: 0s
    strategy: blocking
queryLog:
  type: none
log:
  level: warn
EOF
  "$BLOCKY" serve --config "$1/blocky.yml" >>"$work/blocky.log" 2>&1 &
  pid_of[blocky]=$!
  pids+=($!)
}


# answer server name: the response code and the answer's records, on one line.
answer() {
  local port
  port=$(port_of "$1")
  printf '%s %s' "$(dig +time=1 +tries=2 @127.0.0.1 -p "$port" "$2" A | awk '/status:/ {sub(",", "", $6); print $6}')" \
    "$(dig +short +time=1 +tries=2 @127.0.0.1 -p "$port" "$2" A | tr '\n' ' ')"
}

one_run() { # n mix server file run
  local n=$1 mix=$2 server=$3 file=$4 run=$5
  dnsperf "${perf[@]}" -p "$(port_of "$server")" -d "$file" -l "$secs" >"$work/dnsperf.out" 2>&1
  printf 'qps\t%s\t%s\t%s\t%s\t%s\n' "$n" "$mix" "$server" "$run" "$("$bt" dnsperf "$work/dnsperf.out")" >>"$results"
  log "  N=$n $mix $server: $(awk -F'\t' 'END {print $6 " qps, lost " $8 "%, " $9}' "$results")"
}

for n in "${sizes[@]}"; do
  dir="$work/n$n"
  mkdir -p "$dir"
  log "N=$n: generating names, orders and queries"
  "$bt" gen -n "$n" -dir "$dir" -runs $((runs + 1)) -lines "$lines"
  probe=$(cat "$dir/probe")
  # The RPZ zone lists every name, and "*.name" after those blocked with
  # their subdomains: CoreDNS's hosts file takes both as they are,
  # Blocky's list "*.name" alone for those (it covers the name too).
  awk '$2 == "CNAME" {print "0.0.0.0 " $1}' "$dir/rpz.zone" >"$dir/blocked.hosts"
  awk 'NR == FNR {if ($2 == "CNAME" && $1 ~ /^\*\./) wild[substr($1, 3)] = 1; next}
       $2 == "CNAME" && $1 !~ /^\*\./ {print (($1 in wild) ? "*." : "") $1}' "$dir/rpz.zone" "$dir/rpz.zone" >"$dir/blocked.list"
  sub=$(awk '/^\*\./ {print substr($1, 3); exit}' "$dir/blocked.list")
  allowed=$(awk '{print $1; exit}' "$dir/allowed.txt")

  log "N=$n: submitting the orders to writ"
  start_writ "$dir"
  "$bt" wait -url "http://127.0.0.1:$http_port/healthz" >/dev/null
  "$bt" submit -api "http://127.0.0.1:$http_port" -token "$dir/writ-data/api-token" -dir "$dir" >&2
  stop "${pid_of[writ]}"

  # Start-up: from exec to the first blocked answer for the probe name,
  # one server at a time.
  for server in "${servers[@]}"; do
    t0=$(date +%s%N)
    "start_$server" "$dir"
    printf 'start\t%s\t%s\t%s\n' "$n" "$server" "$("$bt" wait -server "127.0.0.1:$(port_of "$server")" -name "$probe" \
      -rcode "${blocked_rcode[$server]}" -since "$t0" -timeout 180s)" >>"$results"
  done
  log "N=$n: started: $(awk -F'\t' -v n="$n" '$1=="start" && $2==n {printf "%s %s s  ", $3, $4}' "$results")"

  # Each must block the probe and www. below a name blocked with its
  # subdomains, and answer an allowed name from the upstream.
  for server in "${servers[@]}"; do
    for name in "$probe" "www.$sub" "$allowed"; do
      got=$(answer "$server" "$name")
      log "  $server $name: $got"
      case $name:$server:$got in
        "$allowed":*:NOERROR*198.1*) ;;
        "$allowed":*) echo "bench: $server does not answer the allowed name $name: $got" >&2; exit 1 ;;
        *:writ:REFUSED*|*:blocky:NXDOMAIN*|*:coredns:"NOERROR 0.0.0.0 ") ;;
        *) echo "bench: $server does not block $name: $got" >&2; exit 1 ;;
      esac
    done
  done

  # Warm-up: every allowed name once, so the cached mix is all hits.
  for server in "${servers[@]}"; do
    dnsperf "${perf[@]}" -p "$(port_of "$server")" -d "$dir/allowed.txt" -n 1 >/dev/null 2>&1
  done

  for mix in cached blocked mixed; do
    for ((r = 0; r < runs; r++)); do
      file="$dir/q-$mix.txt"
      [ "$mix" = mixed ] && file="$dir/q-mixed-$r.txt"
      # Rotate which server goes first.
      k=${#servers[@]}
      for ((i = 0; i < k; i++)); do
        one_run "$n" "$mix" "${servers[(r + i) % k]}" "$file" "$r"
      done
    done
  done
  for server in "${servers[@]}"; do
    printf 'rss\t%s\t%s\t%s\n' "$n" "$server" "$(peak_rss "${pid_of[$server]}")" >>"$results"
    stop "${pid_of[$server]}"
  done
done

# stats: the median, smallest and largest of the values on stdin.
stats() {
  sort -g | awk '{v[NR] = $1} END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR]}'
}
kqps() { awk -v q="$1" 'BEGIN {printf "%.1fk", q / 1000}'; }
human() {
  case $1 in 1000000) echo 1M ;; 10000) echo 10k ;; *) echo "$1" ;; esac
}
declare -A title=([writ]=writ [coredns]=CoreDNS [blocky]=Blocky)
binary_version() { # path: module version and VCS revision, as the Go toolchain recorded them
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" {v = $3} /vcs.revision=/ {sub(/.*vcs.revision=/, ""); r = substr($0, 1, 12)}
    END {printf "%s%s", (v ? v : "unknown version"), (r ? " (" r ")" : "")}'
}

echo
versions="writ $(git describe --always --dirty 2>/dev/null || echo '(no git)')"
[ -n "$COREDNS" ] && versions+=", CoreDNS $(binary_version "$COREDNS")"
[ -n "$BLOCKY" ] && versions+=", Blocky $(binary_version "$BLOCKY")"
echo "Machine: $(nproc) vCPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "$(go version | awk '{print $3}'), $(dnsperf -h 2>&1 | awk '/^Version/ {print "dnsperf " $2}')"
echo "Servers: $versions"
echo "Command: bench/others.sh $*; dnsperf ${perf[*]} -l $secs, $runs runs each, in turn"
echo
echo "| server | blocked names | mix | qps, median (range) | writ/server | lost, worst run |"
echo "|---|---:|---|---:|---:|---:|"
for n in "${sizes[@]}"; do
  for mix in cached blocked mixed; do
    read -r wm _ _ < <(awk -F'\t' -v n="$n" -v m="$mix" '$1=="qps" && $2==n && $3==m && $4=="writ" {print $6}' "$results" | stats)
    for server in "${servers[@]}"; do
      read -r med lo hi < <(awk -F'\t' -v n="$n" -v m="$mix" -v s="$server" '$1=="qps" && $2==n && $3==m && $4==s {print $6}' "$results" | stats)
      lost=$(awk -F'\t' -v n="$n" -v m="$mix" -v s="$server" '$1=="qps" && $2==n && $3==m && $4==s {print $8}' "$results" | sort -g | tail -1)
      range=""
      ((runs > 1)) && range=" ($(kqps "$lo")–$(kqps "$hi"))"
      ratio="—"
      [ "$server" != writ ] && ratio="**$(awk -v a="$wm" -v b="$med" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')**"
      echo "| ${title[$server]} | $(human "$n") | $mix | $(kqps "$med")$range | $ratio | ${lost}% |"
    done
  done
done
echo
echo "| server | blocked names | start-up to the first blocked answer | peak RSS (VmHWM) |"
echo "|---|---:|---:|---:|"
for n in "${sizes[@]}"; do
  for server in "${servers[@]}"; do
    s=$(awk -F'\t' -v n="$n" -v s="$server" '$1=="start" && $2==n && $3==s {print $4}' "$results")
    kb=$(awk -F'\t' -v n="$n" -v s="$server" '$1=="rss" && $2==n && $3==s {print $4}' "$results")
    echo "| ${title[$server]} | $(human "$n") | $s s | $(awk -v k="$kb" 'BEGIN {printf "%.0f MiB", k / 1024}') |"
  done
done
