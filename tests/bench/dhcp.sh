#!/usr/bin/env bash
# Benchmark (not a test): econet's DHCP server against dnsmasq 2.90, same run, same
# topology: a device namespace with a bridge (10.64.0.0/16, gateway 10.64.0.1) and one
# veth endpoint into an ECO namespace. In the ECO namespace the load generator
# (`cargo run --example dhcp-load`, tests/bench/dhcp_load.rs) plays N nested guests,
# each with its own random MAC, W DORAs outstanding at once, BOOTP broadcast flag set
# (so dnsmasq does not inject N entries into the host-wide ARP table).
#   econet                        `local` network, ip.max_leases_per_endpoint raised above
#                                 N; leases persisted as always (lease file, fsync, at
#                                 most once a second); conflict detection on (an ARP
#                                 probe of 50 ms before offering a never-used address)
#   dnsmasq --no-ping             lease file on disk (rewritten on every change)
#   dnsmasq --no-ping --leasefile-ro
# Then the time from `udhcpc` start to the address applied, for new ECOs, RUNS times
# each (median): econet (which probes a new ECO's address with ARP when its endpoint
# is plumbed, so the first DISCOVER is offered at once), dnsmasq by default (ping
# before offer) and dnsmasq --no-ping (no conflict detection at all).
# Prints leases/s (overall and per 1000 leases), DORA p50/p99, the servers' CPU per
# lease and peak RSS, and the ratios. Run as root.
# Usage: tests/bench/dhcp.sh [LEASES] [WINDOW] [RUNS]   (defaults 10000 256 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10000}
W=${2:-256}
RUNS=${3:-5}
LIMIT=120 # seconds per load run, at most
P="ecb$$"
TMP=$(mktemp -d)
chmod 755 "$TMP" # dnsmasq drops privileges
SERVER_PID=""
SUBNET_START=10.64.0.2
SUBNET_END=10.64.255.254

cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && sleep 0.3 || true
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  [ -n "$SERVER_PID" ] && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
need() { # $1 command, $2 Debian package
  command -v "$1" >/dev/null && return
  echo "dhcp.sh: $1 is missing; installing the Debian package $2" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$2" >&2
}
need dnsmasq dnsmasq-base
need busybox busybox
[ "$N" -le 65000 ] || { echo "LEASES must be at most 65000 (one /16)" >&2; exit 2; }
cargo build --release --quiet --bin econet --example dhcp-load
BIN=${ECONET_BIN:-$PWD/target/release/econet} # ECONET_BIN: compare another build
GEN=$PWD/target/release/examples/dhcp-load
DNSMASQ=$(command -v dnsmasq)

ns_add() { ip netns add "$1"; ip -n "$1" link set lo up; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{v[NR]=$1} END {print (NR ? v[int((NR+1)/2)] : "-")}'; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# A bridge like econet's (STP off, no forward delay, no IPv6 link-local) with the
# gateway address, in device namespace $1.
bridge() {
  ip -n "$1" link add br0 type bridge stp_state 0 forward_delay 0
  ip -n "$1" link set br0 addrgenmode none up
  ip -n "$1" addr add 10.64.0.1/16 dev br0
}
# A veth endpoint $3 on br0 of device $1, its far end eth0 in ECO namespace $2.
port() {
  ip -n "$1" link add "$3" type veth peer name eth0 netns "$2"
  ip -n "$1" link set "$3" master br0 addrgenmode none up
  ip -n "$2" link set eth0 up
}

wait_econet() { # $1 state dir, $2 endpoints expected up
  for _ in $(seq 1 200); do
    local s
    s=$("$BIN" status --json --state-dir "$1" 2>/dev/null || true)
    if grep -q '"applied":true' <<<"$s" && [ "$(grep -o '"state":"up"' <<<"$s" | wc -l)" -ge "$2" ]; then
      return 0
    fi
    sleep 0.05
  done
  echo "econet did not apply its config within 10 s" >&2
  exit 1
}

wait_dnsmasq() { # $1 device namespace: until something listens on port 67
  for _ in $(seq 1 100); do
    ip netns exec "$1" ss -Hlun 'sport = :67' 2>/dev/null | grep -q . && return 0
    sleep 0.05
  done
  echo "dnsmasq did not start" >&2
  exit 1
}

# Runs the generator in ECO namespace $1 against server $SERVER_PID; sets LOAD_OUT,
# LOAD_CPU_US (server CPU per lease), LOAD_HWM (server peak RSS, KiB).
load() {
  local c0 c1 out
  c0=$(cpu_ticks "$SERVER_PID")
  out=$(timeout $((LIMIT + 30)) ip netns exec "$1" "$GEN" client eth0 --leases "$N" --window "$W" --time-limit "$LIMIT")
  c1=$(cpu_ticks "$SERVER_PID")
  echo "$out" | sed 's/^/    /' >&2
  LOAD_OUT=$(grep '^RESULT' <<<"$out")
  local leases
  leases=$(field leases "$LOAD_OUT")
  LOAD_CPU_US=$(awk -v t=$((c1 - c0)) -v u="$TICK_US" -v n="$leases" 'BEGIN { printf "%.0f", (n > 0 ? t * u / n : 0) }')
  LOAD_HWM=$(hwm_kb "$SERVER_PID")
}

stop_server() { # SIGTERM, then SIGKILL after 5 s
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# udhcpc in ECO namespace $1, from start to the address applied by its hook: ms.
HOOK=$TMP/hook
cat > "$HOOK" <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr add "$ip/${mask:-16}" dev "$interface"
    date +%s%N > "$BOUND_FILE" ;;
esac
exit 0
EOF
chmod +x "$HOOK"
udhcpc_ms() {
  local f=$TMP/bound-$1 t0
  rm -f "$f"
  t0=$(date +%s%N)
  timeout 20 ip netns exec "$1" env BOUND_FILE="$f" busybox udhcpc -f -q -n -i eth0 -s "$HOOK" \
    -t 5 -T 3 -x "hostname:$1" >/dev/null 2>&1 || true
  if [ -s "$f" ]; then echo $((($(cat "$f") - t0) / 1000000)); else echo "-"; fi
}

# ---------------------------------------------------------------- econet
echo "econet: $N guests, window $W" >&2
ns_add "$P-e-dev"
ns_add "$P-e-eco"
for i in $(seq 1 "$RUNS"); do ns_add "$P-e-u$i"; done
{
  echo '{"device_id": "bench", "config_version": "1", "ports": [], "networks": ['
  echo '{"id": "bench", "name": "bench", "type": "local",'
  echo " \"ip\": {\"subnet\": \"10.64.0.0/16\", \"lease_secs\": 3600, \"max_leases_per_endpoint\": $((N + 1000))}}"
  echo '], "apps": ['
  echo "{\"id\": \"load\", \"name\": \"load\", \"interfaces\": [{\"name\": \"eth0\", \"network\": \"bench\", \"attach\": {\"netns\": \"/run/netns/$P-e-eco\"}}]}"
  for i in $(seq 1 "$RUNS"); do
    echo ", {\"id\": \"u$i\", \"name\": \"u$i\", \"interfaces\": [{\"name\": \"eth0\", \"network\": \"bench\", \"attach\": {\"netns\": \"/run/netns/$P-e-u$i\"}}]}"
  done
  echo ']}'
} > "$TMP/econet.json"
"$BIN" check "$TMP/econet.json" >/dev/null
ip netns exec "$P-e-dev" "$BIN" run --config "$TMP/econet.json" --state-dir "$TMP/econet" --log-level warn 2>"$TMP/econet.log" &
SERVER_PID=$!
wait_econet "$TMP/econet" $((RUNS + 1))
e_udhcpc=""
for i in $(seq 1 "$RUNS"); do e_udhcpc="$e_udhcpc $(udhcpc_ms "$P-e-u$i")"; done
load "$P-e-eco"
e_out=$LOAD_OUT e_cpu=$LOAD_CPU_US e_hwm=$LOAD_HWM
sleep 1.2 # the last lease file write is due within a second
e_file_lines=$(($(wc -l < "$TMP/econet/leases-bench.txt") - 1))
stop_server

# ---------------------------------------------------------------- dnsmasq
dnsmasq_start() { # $1 device namespace, extra options after
  local dev=$1
  shift
  ip netns exec "$dev" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --port=0 \
    --interface=br0 --bind-interfaces --dhcp-range=$SUBNET_START,$SUBNET_END,255.255.0.0,1h \
    --dhcp-lease-max=70000 --quiet-dhcp --log-facility="$TMP/dnsmasq-$dev.log" \
    --pid-file= "$@" &
  SERVER_PID=$!
  wait_dnsmasq "$dev"
}

dnsmasq_load() { # $1 tag, extra options after
  local tag=$1
  shift
  echo "dnsmasq $*: $N guests, window $W" >&2
  ns_add "$P-$tag-dev"
  ns_add "$P-$tag-eco"
  bridge "$P-$tag-dev"
  port "$P-$tag-dev" "$P-$tag-eco" vload
  dnsmasq_start "$P-$tag-dev" --no-ping "$@"
  load "$P-$tag-eco"
  stop_server
}
dnsmasq_load f --dhcp-leasefile="$TMP/dnsmasq.leases"
f_out=$LOAD_OUT f_cpu=$LOAD_CPU_US f_hwm=$LOAD_HWM
f_file_lines=$(wc -l < "$TMP/dnsmasq.leases")
dnsmasq_load r --leasefile-ro
r_out=$LOAD_OUT r_cpu=$LOAD_CPU_US r_hwm=$LOAD_HWM

dnsmasq_udhcpc() { # $1 tag, extra options after; sets UDHCPC_OUT
  local tag=$1 out=""
  shift
  ns_add "$P-$tag-dev"
  bridge "$P-$tag-dev"
  for i in $(seq 1 "$RUNS"); do
    ns_add "$P-$tag-u$i"
    port "$P-$tag-dev" "$P-$tag-u$i" "vu$i"
  done
  dnsmasq_start "$P-$tag-dev" --dhcp-leasefile="$TMP/dnsmasq-$tag.leases" "$@"
  for i in $(seq 1 "$RUNS"); do out="$out $(udhcpc_ms "$P-$tag-u$i")"; done
  stop_server
  UDHCPC_OUT=$out
}
dnsmasq_udhcpc p
p_udhcpc=$UDHCPC_OUT
dnsmasq_udhcpc n --no-ping
n_udhcpc=$UDHCPC_OUT

# ---------------------------------------------------------------- the generator alone
ns_add "$P-g-a"
ns_add "$P-g-b"
ip -n "$P-g-a" link add eth0 type veth peer name eth0 netns "$P-g-b"
ip -n "$P-g-a" link set eth0 up
ip -n "$P-g-b" link set eth0 up
ip netns exec "$P-g-b" timeout $((LIMIT + 30)) "$GEN" respond eth0 --secs $((LIMIT + 20)) >/dev/null &
SERVER_PID=$!
sleep 0.5 # its socket is open by then
g_out=$(timeout $((LIMIT + 30)) ip netns exec "$P-g-a" "$GEN" client eth0 --leases "$N" --window "$W" --time-limit "$LIMIT" | grep '^RESULT')
stop_server

# ---------------------------------------------------------------- report
row() { # label, RESULT line, server CPU us/lease, HWM KiB
  printf "  %-34s %8s %8s %8s %15s %6s %5s %9s us %7s KiB\n" "$1" "$(field rate "$2")" \
    "$(field p50_ms "$2")" "$(field p99_ms "$2")" "$(field bucket_min "$2")..$(field bucket_max "$2")" \
    "$(field retransmits "$2")" "$(field failures "$2")" "$3" "$4"
}
e_rate=$(field rate "$e_out")
echo
echo "DHCP: $N new guests behind one ECO endpoint, $W DORAs outstanding, same bridge topology"
printf "  %-34s %8s %8s %8s %15s %6s %5s %12s %11s\n" "" "leases/s" "p50 ms" "p99 ms" "per 1000 min..max" \
  "retx" "fail" "server CPU" "peak RSS"
row "econet (lease file, ARP probe)" "$e_out" "$e_cpu" "$e_hwm"
row "dnsmasq --no-ping, lease file" "$f_out" "$f_cpu" "$f_hwm"
row "dnsmasq --no-ping --leasefile-ro" "$r_out" "$r_cpu" "$r_hwm"
echo "  econet vs dnsmasq with lease file   $(ratio "$e_rate" "$(field rate "$f_out")")x leases/s (goal 10x)"
echo "  econet vs dnsmasq --leasefile-ro    $(ratio "$e_rate" "$(field rate "$r_out")")x leases/s (goal 2x)"
echo "  econet flatness (slowest/fastest 1000-lease bucket)  $(ratio "$(field bucket_min "$e_out")" "$(field bucket_max "$e_out")")"
echo "  lease files after the runs          econet $e_file_lines allocations, dnsmasq $f_file_lines leases"
echo "  the generator against a trivial responder: $(field rate "$g_out") leases/s, p50 $(field p50_ms "$g_out") ms" \
  "($(field retransmits "$g_out") retransmits); its own CPU against econet $(field gen_cpu_us_per_lease "$e_out") us per lease"
echo
echo "udhcpc start to address applied, new ECO (median of $RUNS; each run in ms)"
printf "  %-34s %6s ms   (%s )\n" "econet (ECO probed ahead, ARP)" "$(median <<<"$e_udhcpc")" "$e_udhcpc"
printf "  %-34s %6s ms   (%s )\n" "dnsmasq (ping before offer)" "$(median <<<"$p_udhcpc")" "$p_udhcpc"
printf "  %-34s %6s ms   (%s )\n" "dnsmasq --no-ping (no detection)" "$(median <<<"$n_udhcpc")" "$n_udhcpc"
