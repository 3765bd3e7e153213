#!/usr/bin/env bash
# Benchmark (not a test): econet's DNS against dnsmasq 2.90, same run, same topology:
# a device namespace with a bridge (10.65.0.0/16, gateway 10.65.0.1) and one veth
# endpoint into an ECO namespace (10.65.0.2) where dnsperf runs, and a port (eth0,
# 192.0.2.2) to an upstream namespace whose dnsmasq (192.0.2.1) answers every
# *.fwd.test name with --address and a one-hour TTL.
#   ECO names        NAMES names h001.eco.internal … (econet: apps with static IPs;
#                    dnsmasq: the same names and addresses as --host-record, its
#                    fastest way here; an --addn-hosts file measured slower)
#   forwarded names  NAMES names n001.fwd.test … forwarded to the upstream, warmed
#                    first so that the measured run is answered from the cache
#                    (the upstream's CPU during the run shows it)
# dnsperf -c 4 -T 2 -q 100 for SECS seconds, RUNS runs of each, median. CPU per query
# is the server's utime+stime (/proc/PID/stat) over the run ÷ queries completed.
# RSS is the server's VmHWM after the runs. Prints both figures and the ratios.
# Run as root. Usage: tests/bench/dns.sh [SECS] [RUNS] [NAMES]   (defaults 10 3 300)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
RUNS=${2:-3}
NAMES=${3:-300}
P="ecb$$"
TMP=$(mktemp -d)
chmod 755 "$TMP" # dnsmasq, after dropping privileges, still writes its log here
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ ${#PIDS[@]} -gt 0 ] && sleep 0.3 || true
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
need() { # $1 command, $2 Debian package
  command -v "$1" >/dev/null && return
  echo "dns.sh: $1 is missing; installing the Debian package $2" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$2" >&2
}
need dnsmasq dnsmasq-base
need dnsperf dnsperf
[ "$NAMES" -ge 1 ] && [ "$NAMES" -le 500 ] || { echo "NAMES must be 1 to 500" >&2; exit 2; }
cargo build --release --quiet --bin econet
BIN=${ECONET_BIN:-$PWD/target/release/econet} # ECONET_BIN: compare another build
DNSMASQ=$(command -v dnsmasq)
TICK_US=$((1000000 / $(getconf CLK_TCK)))

ns_add() { ip netns add "$1"; ip -n "$1" link set lo up; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR ? v[int((NR+1)/2)] : "-")}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
host_ip() { echo "10.65.$((1 + ($1 - 1) / 250)).$((1 + ($1 - 1) % 250))"; }

for i in $(seq 1 "$NAMES"); do
  printf "h%03d.eco.internal A\n" "$i"
done > "$TMP/eco.txt"
for i in $(seq 1 "$NAMES"); do
  printf "n%03d.fwd.test A\n" "$i"
done > "$TMP/fwd.txt"
HOST_RECORDS=()
for i in $(seq 1 "$NAMES"); do
  HOST_RECORDS+=("$(printf -- "--host-record=h%03d.eco.internal,h%03d,%s" "$i" "$i" "$(host_ip "$i")")")
done

# The upstream namespace $1-up behind port eth0 of device $1-dev.
upstream() {
  ns_add "$1-up"
  ip -n "$1-dev" link add eth0 type veth peer name eth0 netns "$1-up"
  ip -n "$1-dev" link set eth0 up
  ip -n "$1-up" link set eth0 up
  ip -n "$1-dev" addr add 192.0.2.2/24 dev eth0
  ip -n "$1-up" addr add 192.0.2.1/24 dev eth0
  ip netns exec "$1-up" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv \
    --no-hosts --listen-address=192.0.2.1 --bind-interfaces --address=/fwd.test/198.51.100.7 \
    --local-ttl=3600 --pid-file= --log-facility="$TMP/up-$1.log" &
  UP_PID=$!
  PIDS+=("$UP_PID")
}

wait_dns() { # $1 namespace: until the gateway answers a query for h001
  for _ in $(seq 1 100); do
    if ip netns exec "$1" dnsperf -s 10.65.0.1 -d "$TMP/eco.txt" -n 1 -t 1 -c 1 2>/dev/null |
      grep -q 'Queries completed: *[1-9]'; then
      return 0
    fi
    sleep 0.1
  done
  echo "no DNS answer from 10.65.0.1 in $1" >&2
  exit 1
}

# One measured dnsperf run from ECO namespace $1 with query file $2 against server
# $3, upstream $4: prints "qps cpu_us_per_query lost upstream_cpu_ms".
measure() {
  local c0 u0 out c1 u1 done qps lost
  c0=$(cpu_ticks "$3")
  u0=$(cpu_ticks "$4")
  out=$(timeout $((SECS + 30)) ip netns exec "$1" dnsperf -s 10.65.0.1 -d "$2" -l "$SECS" -c 4 -T 2 -q 100 2>&1)
  c1=$(cpu_ticks "$3")
  u1=$(cpu_ticks "$4")
  done=$(sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p' <<<"$out")
  lost=$(sed -n 's/.*Queries lost: *\([0-9]*\).*/\1/p' <<<"$out")
  qps=$(sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p' <<<"$out")
  # Every answer must be a NOERROR with data, else the comparison is void.
  noerror=$(sed -n 's/.*Response codes: *NOERROR [0-9]* (\([0-9.]*\)%).*/\1/p' <<<"$out")
  awk -v q="$qps" -v t=$((c1 - c0)) -v u="$TICK_US" -v n="${done:-0}" -v l="${lost:-?}" \
    -v up=$(((u1 - u0) * TICK_US / 1000)) -v ok="${noerror:-0}" \
    'BEGIN { printf "%.0f %.2f %s %d %s\n", q, (n > 0 ? t * u / n : 0), l, up, ok }'
}

# Warms server $2 from ECO $1: every forwarded name once through its cache (and the
# ECO names, harmless).
warm() {
  timeout 60 ip netns exec "$1" dnsperf -s 10.65.0.1 -d "$TMP/fwd.txt" -n 2 -c 1 -q 10 >/dev/null 2>&1
  timeout 60 ip netns exec "$1" dnsperf -s 10.65.0.1 -d "$TMP/eco.txt" -n 2 -c 1 -q 10 >/dev/null 2>&1
}
col() { awk -v c="$1" 'NF {print $c}' <<<"$2" | median; }

# ---------------------------------------------------------------- econet
E="$P-e"
ns_add "$E-dev"
ns_add "$E-eco"
upstream "$E"
E_UP=$UP_PID
{
  echo '{"device_id": "bench", "config_version": "1",'
  echo ' "ports": [{"name": "eth0", "ifname": "eth0", "labels": ["uplink"]}],'
  echo ' "networks": [{"id": "dns", "name": "dns", "type": "local", "port": "eth0",'
  echo '   "ip": {"subnet": "10.65.0.0/16", "dhcp_range": {"start": "10.65.128.1", "end": "10.65.255.250"},'
  echo '          "dns": ["192.0.2.1"], "domain": "eco.internal"}}],'
  echo ' "apps": ['
  echo "  {\"id\": \"perf\", \"name\": \"perf\", \"interfaces\": [{\"name\": \"eth0\", \"network\": \"dns\", \"ip\": \"10.65.0.2\", \"attach\": {\"netns\": \"/run/netns/$E-eco\"}}]}"
  for i in $(seq 1 "$NAMES"); do
    printf ', {"id": "h%03d", "name": "h%03d", "interfaces": [{"name": "eth0", "network": "dns", "ip": "%s", "attach": {"tap": "th%03d"}}]}\n' \
      "$i" "$i" "$(host_ip "$i")" "$i"
  done
  echo ']}'
} > "$TMP/econet.json"
"$BIN" check "$TMP/econet.json" >/dev/null
ip netns exec "$E-dev" "$BIN" run --config "$TMP/econet.json" --state-dir "$TMP/econet" --log-level warn 2>"$TMP/econet.log" &
E_PID=$!
PIDS+=("$E_PID")
for _ in $(seq 1 200); do
  "$BIN" status --json --state-dir "$TMP/econet" 2>/dev/null | grep -q '"applied":true' && break
  sleep 0.05
done
ip -n "$E-eco" addr add 10.65.0.2/16 dev eth0
wait_dns "$E-eco"

# ---------------------------------------------------------------- dnsmasq
D="$P-d"
ns_add "$D-dev"
ns_add "$D-eco"
upstream "$D"
D_UP=$UP_PID
ip -n "$D-dev" link add br0 type bridge stp_state 0 forward_delay 0
ip -n "$D-dev" link set br0 addrgenmode none up
ip -n "$D-dev" addr add 10.65.0.1/16 dev br0
ip -n "$D-dev" link add vperf type veth peer name eth0 netns "$D-eco"
ip -n "$D-dev" link set vperf master br0 addrgenmode none up
ip -n "$D-eco" link set eth0 up
ip -n "$D-eco" addr add 10.65.0.2/16 dev eth0
ip netns exec "$D-dev" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv \
  --no-hosts --server=192.0.2.1 --interface=br0 --bind-interfaces "${HOST_RECORDS[@]}" \
  --domain=eco.internal --local=/eco.internal/ --cache-size=10000 --pid-file= \
  --log-facility="$TMP/dnsmasq.log" &
D_PID=$!
PIDS+=("$D_PID")
wait_dns "$D-eco"

# ---------------------------------------------------------------- runs
# Both servers are up (each idle while the other is measured); their runs alternate,
# so a noisy neighbour on the box hits both alike.
warm "$E-eco"
warm "$D-eco"
e_eco="" e_fwd="" d_eco="" d_fwd=""
for r in $(seq 1 "$RUNS"); do
  echo "run $r of $RUNS ($SECS s each: econet and dnsmasq, ECO names and forwarded)" >&2
  e_eco="$e_eco$(measure "$E-eco" "$TMP/eco.txt" "$E_PID" "$E_UP")"$'\n'
  d_eco="$d_eco$(measure "$D-eco" "$TMP/eco.txt" "$D_PID" "$D_UP")"$'\n'
  e_fwd="$e_fwd$(measure "$E-eco" "$TMP/fwd.txt" "$E_PID" "$E_UP")"$'\n'
  d_fwd="$d_fwd$(measure "$D-eco" "$TMP/fwd.txt" "$D_PID" "$D_UP")"$'\n'
done
e_hwm=$(hwm_kb "$E_PID")
d_hwm=$(hwm_kb "$D_PID")

# ---------------------------------------------------------------- report
echo
echo "DNS: dnsperf -c 4 -T 2 -q 100, $SECS s a run, median of $RUNS runs; $NAMES ECO names, $NAMES forwarded names (cached)"
printf "  %-28s %9s %14s %10s %18s\n" "" "qps" "CPU us/query" "lost" "upstream CPU ms"
for kind in eco fwd; do
  label=$([ $kind = eco ] && echo "ECO names" || echo "forwarded, cached")
  eval "er=\$e_$kind; dr=\$d_$kind"
  eq=$(col 1 "$er") ec=$(col 2 "$er") el=$(col 3 "$er") eu=$(col 4 "$er")
  dq=$(col 1 "$dr") dc=$(col 2 "$dr") dl=$(col 3 "$dr") du=$(col 4 "$dr")
  printf "  %-28s %9s %14s %10s %18s\n" "$label: econet" "$eq" "$ec" "$el" "$eu"
  printf "  %-28s %9s %14s %10s %18s\n" "$label: dnsmasq" "$dq" "$dc" "$dl" "$du"
  echo "  $label: econet $(ratio "$eq" "$dq")x dnsmasq's qps (goal 1.5x), $(ratio "$ec" "$dc")x its CPU per query (goal 0.33x)"
done
printf "  %-28s %9s KiB\n" "peak RSS (VmHWM): econet" "$e_hwm"
printf "  %-28s %9s KiB\n" "peak RSS (VmHWM): dnsmasq" "$d_hwm"
echo "  runs (qps, CPU us/query, lost, upstream CPU ms, NOERROR %):"
for v in e_eco e_fwd d_eco d_fwd; do
  echo "    $v: $(tr '\n' ';' <<<"${!v}")"
done
