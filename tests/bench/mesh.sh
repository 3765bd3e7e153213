#!/usr/bin/env bash
# Benchmark (not a test): TCP throughput between two ECOs on two devices across a
# mesh network (econet release build as the xTRs, `econet map-server`, an underlay
# router), with LISP-crypto on and off, against the plain underlay path between the two
# devices, in the same run; and the time from a cold map-cache to the first packet
# delivered (the first ping's round trip, which waits for the Map-Request and
# Map-Reply). Run as root.  Usage: tests/bench/mesh.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
P="ecbmesh$$"
TMP=$(mktemp -d)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
command -v iperf3 >/dev/null || { echo "needs iperf3 (apt-get install iperf3)" >&2; exit 2; }
cargo build --release --quiet
BIN=$PWD/target/release/econet

setup() { # $1: tag, $2: encrypt (true/false)
  local t=$1 encrypt=$2
  for n in rtr ms d0 d1 e0 e1; do ip netns add "$P-$t-$n"; ip -n "$P-$t-$n" link set lo up; done
  ip netns exec "$P-$t-rtr" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  local i=0
  for pair in "ms 198.51.100" "d0 203.0.113" "d1 203.0.114"; do
    set -- $pair
    ip -n "$P-$t-rtr" link add "r$1" type veth peer name eth0 netns "$P-$t-$1"
    ip -n "$P-$t-rtr" addr add "$2.254/24" dev "r$1"; ip -n "$P-$t-rtr" link set "r$1" up
    ip -n "$P-$t-$1" addr add "$2.1/24" dev eth0; ip -n "$P-$t-$1" link set eth0 up
    ip -n "$P-$t-$1" route add default via "$2.254"
    i=$((i + 1))
  done
  cat > "$TMP/$t-ms.json" <<EOF
{"listen": "198.51.100.1", "registration_timeout_secs": 30,
 "sites": [{"name": "fleet", "key": "ms-secret", "instance_id": 1000, "eid_prefixes": ["10.200.0.0/16"]}]}
EOF
  ip netns exec "$P-$t-ms" "$BIN" map-server --config "$TMP/$t-ms.json" --state-dir "$TMP/$t-ms" --log-level warn &
  PIDS+=($!)
  for d in 0 1; do
    cat > "$TMP/$t-d$d.json" <<EOF
{"device_id": "dev$d", "ports": [{"name": "eth0", "ifname": "eth0"}],
 "networks": [{"id": "fleet", "name": "fleet", "type": "mesh", "port": "eth0",
   "ip": {"subnet": "10.200.0.0/16", "dhcp_range": {"start": "10.200.$((d + 1)).10", "end": "10.200.$((d + 1)).100"}},
   "mesh": {"instance_id": 1000, "map_servers": [{"address": "198.51.100.1", "key": "ms-secret"}],
            "register_secs": 5, "encrypt": $encrypt}}],
 "apps": [{"id": "a$d", "name": "eco$d", "interfaces": [{"name": "eth0", "network": "fleet", "ip": "10.200.$((d + 1)).5", "attach": {"netns": "/run/netns/$P-$t-e$d"}}]}]}
EOF
    ip netns exec "$P-$t-d$d" "$BIN" run --config "$TMP/$t-d$d.json" --state-dir "$TMP/$t-s$d" --log-level warn &
    PIDS+=($!)
  done
  for d in 0 1; do
    for _ in $(seq 1 100); do
      ip -n "$P-$t-e$d" link show eth0 >/dev/null 2>&1 && break
      sleep 0.1
    done
    ip -n "$P-$t-e$d" addr add "10.200.$((d + 1)).5/16" dev eth0
    ip -n "$P-$t-e$d" route add default via 10.200.0.1
  done
  # Registered (both EIDs at the map server)?
  for _ in $(seq 1 100); do
    [ "$("$BIN" status --json --state-dir "$TMP/$t-ms" | grep -o '/32"' | wc -l)" -ge 2 ] && break
    sleep 0.1
  done
}

iperf() { # $1: client ns, $2: server ns, $3: server address -> Mbit/s
  ip netns exec "$2" iperf3 -s -1 -B "$3" >/dev/null 2>&1 &
  local s=$!
  sleep 0.5
  ip netns exec "$1" iperf3 -c "$3" -t "$SECS" -J 2>/dev/null |
    awk -F: '/"sum_received"/ {f=1} f && /"bits_per_second"/ {gsub(/[ ,]/, "", $2); printf "%.0f", $2 / 1e6; exit}'
  wait "$s" 2>/dev/null || true
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

setup clear false
setup enc true
# Cold map-cache: the first ping waits for Map-Request/Map-Reply.
first_clear=$(ip netns exec "$P-clear-e0" ping -c 1 -W 5 10.200.2.5 | sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p')
first_enc=$(ip netns exec "$P-enc-e0" ping -c 1 -W 5 10.200.2.5 | sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p')
warm=$(ip netns exec "$P-enc-e0" ping -c 5 -i 0.2 -W 2 10.200.2.5 | sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1/p')

plain=$(iperf "$P-clear-d0" "$P-clear-d1" 203.0.114.1)
clear=$(iperf "$P-clear-e0" "$P-clear-e1" 10.200.2.5)
enc=$(iperf "$P-enc-e0" "$P-enc-e1" 10.200.2.5)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "mesh: iperf3 TCP ECO to ECO across two devices, ${SECS} s each (econet release build)"
printf "  %-44s %8s Mbit/s\n" "plain underlay (device to device)" "$plain"
printf "  %-44s %8s Mbit/s  (%s of plain)\n" "mesh, LISP clear" "$clear" "$(ratio "$clear" "$plain")"
printf "  %-44s %8s Mbit/s  (%s of plain)\n" "mesh, LISP-crypto (x25519, AES-128-GCM)" "$enc" "$(ratio "$enc" "$plain")"
printf "  %-44s %8s ms\n" "cold map-cache: first ping, clear" "$first_clear"
printf "  %-44s %8s ms\n" "cold map-cache: first ping, encrypted" "$first_enc"
printf "  %-44s %8s ms\n" "warm: ping average, encrypted" "$warm"
