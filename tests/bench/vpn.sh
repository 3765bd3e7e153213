#!/usr/bin/env bash
# Benchmark (not a test): iperf3 TCP through IPsec tunnels, all in the same run, each
# between a host on the left and a host on the right of two VPN gateways in
# namespaces:
#   plain      the routed path with no tunnel
#   ee         econet <-> econet (cloud networks, release build)
#   es         econet <-> strongSwan (charon 5.9 with kernel-libipsec)
#   ss         strongSwan <-> strongSwan (both kernel-libipsec)
# Prints throughput, the ratios, and econet's CPU (per GB moved) and peak RSS.
# Run as root.  Usage: tests/bench/vpn.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
P="ecbvpn$$"
TMP=$(mktemp -d)
PIDS=()
PSK="a long shared secret"

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
for t in iperf3 swanctl /usr/lib/ipsec/charon; do
  command -v "$t" >/dev/null || { echo "needs $t (apt-get install iperf3 strongswan-charon strongswan-swanctl libcharon-extra-plugins)" >&2; exit 2; }
done
cargo build --release --quiet
BIN=$PWD/target/release/econet

ns() { ip netns add "$P-$1"; ip -n "$P-$1" link set lo up; }
link() { # ns1 if1 addr1 ns2 if2 addr2
  ip -n "$P-$1" link add "$2" type veth peer name "$5" netns "$P-$4"
  ip -n "$P-$1" addr add "$3" dev "$2"; ip -n "$P-$1" link set "$2" up
  ip -n "$P-$4" addr add "$6" dev "$5"; ip -n "$P-$4" link set "$5" up
}
fwd() { ip netns exec "$P-$1" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'; }

econet_gw() { # tag side subnet remote_subnet remote local_id remote_id initiator eco_ip
  local t=$1 s=$2
  cat > "$TMP/$t-$s.json" <<EOF
{"device_id": "$t-$s", "ports": [{"name": "eth0", "ifname": "eth0"}],
 "networks": [{"id": "vpc", "name": "vpc", "type": "cloud", "port": "eth0",
   "ip": {"subnet": "$3", "dhcp_range": {"start": "${3%.0/24}.100", "end": "${3%.0/24}.200"}},
   "vpn": {"remote": "$5", "local_id": "$6", "remote_id": "$7", "auth": {"psk": "$PSK"},
           "remote_subnets": ["$4"], "initiator": $8}}],
 "apps": [{"id": "h", "name": "h", "interfaces": [{"name": "eth0", "network": "vpc", "ip": "$9", "attach": {"netns": "/run/netns/$P-$t-h$s"}}]}]}
EOF
  ip netns exec "$P-$t-g$s" "$BIN" run --config "$TMP/$t-$s.json" --state-dir "$TMP/$t-$s" --log-level warn &
  PIDS+=($!)
  echo $! > "$TMP/$t-$s.pid"
  for _ in $(seq 1 100); do ip -n "$P-$t-h$s" link show eth0 >/dev/null 2>&1 && break; sleep 0.1; done
  ip -n "$P-$t-h$s" addr add "$9/24" dev eth0
  ip -n "$P-$t-h$s" route add default via "${3%.0/24}.1"
}

charon_gw() { # tag side local_addr remote_addr local_ts remote_ts local_id remote_id
  local t=$1 s=$2 d="$TMP/$1-$2-charon"
  mkdir -p "$d/run"
  cat > "$d/strongswan.conf" <<EOF
charon {
  load = random nonce openssl pem pkcs1 x509 pubkey aes sha1 sha2 hmac gcm kdf kernel-libipsec kernel-netlink socket-default vici updown
  plugins { vici { socket = unix://$d/charon.vici } }
}
swanctl { load = pem pkcs1 x509 pubkey random nonce openssl }
EOF
  cat > "$d/swanctl.conf" <<EOF
connections { bench { version = 2
  local_addrs = $3
  remote_addrs = $4
  proposals = aes256gcm16-prfsha256-x25519
  encap = yes
  local { auth = psk
    id = $7 }
  remote { auth = psk
    id = $8 }
  children { net { local_ts = $5
    remote_ts = $6
    esp_proposals = aes256gcm16 } } } }
secrets { ike-bench { id-1 = $7
  id-2 = $8
  secret = "$PSK" } }
EOF
  STRONGSWAN_CONF="$d/strongswan.conf" ip netns exec "$P-$t-g$s" sh -c "mount --bind $d/run /run && exec /usr/lib/ipsec/charon" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$d/charon.vici" ] && break; sleep 0.1; done
  STRONGSWAN_CONF="$d/strongswan.conf" swanctl --load-all --file "$d/swanctl.conf" --uri "unix://$d/charon.vici" >/dev/null 2>"$d/swanctl.err" || { cat "$d/swanctl.err" >&2; exit 1; }
}

charon_initiate() { # tag side
  local d="$TMP/$1-$2-charon"
  STRONGSWAN_CONF="$d/strongswan.conf" swanctl --initiate --child net --timeout 10 --uri "unix://$d/charon.vici" >/dev/null
}

# Left host hL, gateway gL, wan, gateway gR, right host hR; addresses:
#   hL 10.3.0.20/24 (gw 10.3.0.1)   gL 192.0.2.1   gR 192.0.2.2   hR 172.31.0.20/24 (gw 172.31.0.1)
topo() {
  local t=$1
  for n in hL gL gR hR; do ns "$t-$n"; done
  link "$t-gL" eth0 192.0.2.1/24 "$t-gR" eth0 192.0.2.2/24
  fwd "$t-gL"; fwd "$t-gR"
}
host_link() { # tag side(L|R) subnet host_ip — a host cabled to a charon gateway
  link "$1-g$2" eth1 "${3%.0/24}.1/24" "$1-h$2" eth0 "$4/24"
  ip -n "$P-$1-h$2" route add default via "${3%.0/24}.1"
}

wait_ping() { # ns addr
  for _ in $(seq 1 100); do ip netns exec "$P-$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "no path from $1 to $2" >&2; return 1
}

iperf() { # tag -> Mbit/s from hL to hR
  ip netns exec "$P-$1-hR" iperf3 -s -1 -B 172.31.0.20 >/dev/null 2>&1 &
  local s=$!
  sleep 0.5
  ip netns exec "$P-$1-hL" iperf3 -c 172.31.0.20 -t "$SECS" -J 2>/dev/null |
    awk -F: '/"sum_received"/ {f=1} f && /"bits_per_second"/ {gsub(/[ ,]/, "", $2); printf "%.0f", $2 / 1e6; exit}'
  wait "$s" 2>/dev/null || true
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# plain: routed, no tunnel
topo plain
host_link plain L 10.3.0.0/24 10.3.0.20
host_link plain R 172.31.0.0/24 172.31.0.20
ip -n "$P-plain-gL" route add 172.31.0.0/24 via 192.0.2.2
ip -n "$P-plain-gR" route add 10.3.0.0/24 via 192.0.2.1
wait_ping plain-hL 172.31.0.20

# econet <-> econet
topo ee
econet_gw ee L 10.3.0.0/24 172.31.0.0/24 192.0.2.2 left right true 10.3.0.20
econet_gw ee R 172.31.0.0/24 10.3.0.0/24 192.0.2.1 right left false 172.31.0.20
wait_ping ee-hL 172.31.0.20

# econet <-> strongSwan
topo es
econet_gw es L 10.3.0.0/24 172.31.0.0/24 192.0.2.2 left right true 10.3.0.20
host_link es R 172.31.0.0/24 172.31.0.20
charon_gw es R 192.0.2.2 192.0.2.1 172.31.0.0/24 10.3.0.0/24 right left
wait_ping es-hL 172.31.0.20

# strongSwan <-> strongSwan
topo ss
host_link ss L 10.3.0.0/24 10.3.0.20
host_link ss R 172.31.0.0/24 172.31.0.20
charon_gw ss L 192.0.2.1 192.0.2.2 10.3.0.0/24 172.31.0.0/24 left right
charon_gw ss R 192.0.2.2 192.0.2.1 172.31.0.0/24 10.3.0.0/24 right left
charon_initiate ss L
wait_ping ss-hL 172.31.0.20

plain=$(iperf plain)
eL=$(cat "$TMP/ee-L.pid"); eR=$(cat "$TMP/ee-R.pid")
c0=$(( $(ticks "$eL") + $(ticks "$eR") ))
# PERF=DIR: profile both econets during the econet<->econet run (perf report -i DIR/…).
if [ -n "${PERF:-}" ]; then
  mkdir -p "$PERF"
  perf record -g -o "$PERF/left.data" -p "$eL" -- sleep "$SECS" >/dev/null 2>&1 &
  p1=$!
  perf record -g -o "$PERF/right.data" -p "$eR" -- sleep "$SECS" >/dev/null 2>&1 &
  p2=$!
fi
ee=$(iperf ee)
[ -n "${PERF:-}" ] && wait "$p1" "$p2"
c1=$(( $(ticks "$eL") + $(ticks "$eR") ))
es=$(iperf es)
ss=$(iperf ss)
hz=$(getconf CLK_TCK)
gb=$(awk -v m="$ee" -v s="$SECS" 'BEGIN { printf "%.3f", m * s / 8 / 1000 }')
cpu_s=$(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')
per_gb=$(awk -v c="$cpu_s" -v g="$gb" 'BEGIN { if (g > 0) printf "%.2f", c / g; else print "-" }')
rss_l=$(hwm "$eL"); rss_r=$(hwm "$eR")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }'; }
echo
echo "IPsec tunnels: iperf3 TCP, ${SECS} s each, host to host through two gateways (2 cores shared by all)"
printf "  %-38s %8s Mbit/s\n" "plain routed path" "$plain"
printf "  %-38s %8s Mbit/s  (%sx strongSwan<->strongSwan)\n" "econet <-> econet" "$ee" "$(ratio "$ee" "$ss")"
printf "  %-38s %8s Mbit/s  (%sx strongSwan<->strongSwan)\n" "econet <-> strongSwan (libipsec)" "$es" "$(ratio "$es" "$ss")"
printf "  %-38s %8s Mbit/s\n" "strongSwan <-> strongSwan (libipsec)" "$ss"
printf "  %-38s %8s s CPU for %s GB (%s s/GB, both gateways)\n" "econet CPU during econet<->econet" "$cpu_s" "$gb" "$per_gb"
printf "  %-38s %8s / %s KiB\n" "econet peak RSS (left / right)" "$rss_l" "$rss_r"
