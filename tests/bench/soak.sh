#!/usr/bin/env bash
# tests/bench/soak.sh [SECONDS] [SAMPLE_SECONDS]   (defaults 3600 and 60)
#
# A soak (not a test of features): econet runs a device with a local network, a cloud
# network (IKEv2/ESP to a peer econet, rekeying every 40 s for the CHILD SA and 120 s
# for the IKE SA) and a mesh network (registering every 5 s with `econet map-server`),
# while, for SECONDS:
#   - config reloads: a new config_version every 20 s, a static_dns entry toggled;
#   - DHCP churn: ECOs renew, release and lease again; nested guests with new MACs
#     come and go, so the pool fills and allocations are reused;
#   - DNS load: local names and forwarded names (random, so the cache turns over);
#   - traffic through the tunnel.
# Every SAMPLE_SECONDS it prints econet's RSS, open file descriptors and lease file
# size (and the peer's RSS). At the end it checks that they stayed flat: RSS in the
# second half within 10% (+256 KiB) of the first half's peak, descriptors within 8 of
# where they started, the lease file within what the pool can hold; that econet is
# alive with the config applied, the tunnel up and the mesh registered; and that the
# loads really ran. Exit 0 when all hold.
#
# Run as root on Debian 12 (iproute2, busybox, bind9-dnsutils, dnsmasq-base; tests/run
# installs them). Builds the release binary, unless ECONET_BIN names one. Every
# namespace has a unique name and is removed on exit. CI runs a 5-minute variant:
# tests/bench/soak.sh 300 30.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-3600}
SAMPLE=${2:-60}
[ "$(id -u)" -eq 0 ] || { echo "soak: run as root" >&2; exit 2; }
if [ -n "${ECONET_BIN:-}" ]; then
  BIN=$(realpath "$ECONET_BIN")
else
  cargo build --release --quiet
  BIN=$PWD/target/release/econet
fi

P=ecsoak$$
W=$(mktemp -d "${TMPDIR:-/tmp}/econet-soak.XXXXXX")
pids=()
created=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "${created[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns delete "$ns" 2>/dev/null || true
  done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
add_ns() { ip netns add "$1"; created+=("$1"); ip -n "$1" link set lo up; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

add_ns "$P-dev"
add_ns "$P-peer"
add_ns "$P-ph"
for e in 1 2 3 4 c m; do add_ns "$P-e$e"; done
ip -n "$P-dev" link add eth0 type veth peer name eth0 netns "$P-peer"
ip -n "$P-dev" addr add 192.0.2.1/24 dev eth0
ip -n "$P-peer" addr add 192.0.2.2/24 dev eth0
ip -n "$P-dev" link set eth0 up
ip -n "$P-peer" link set eth0 up
ip -n "$P-dev" route add default via 192.0.2.2
# The upstream for forwarded names: a dnsmasq on the peer that answers every name.
in_ns "$P-peer" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
  --listen-address=192.0.2.2 --bind-interfaces --address=/#/192.0.2.99 --pid-file= \
  --user=root >/dev/null 2>&1 &
pids+=($!)

psk="soak shared secret"
config() { # version, whether the extra static_dns entry is there
  local extra=""
  [ "$2" = 1 ] && extra=', {"host": "toggled", "addrs": ["10.10.1.8"]}'
  cat <<JSON
{"device_id": "soak", "config_version": "$1",
 "ports": [{"name": "eth0", "ifname": "eth0"}],
 "networks": [
  {"id": "lan", "name": "lan", "type": "local", "port": "eth0",
   "ip": {"subnet": "10.10.1.0/24", "dhcp_range": {"start": "10.10.1.10", "end": "10.10.1.60"},
          "domain": "eco.internal", "lease_secs": 60, "dns": ["192.0.2.2"]},
   "static_dns": [{"host": "db", "addrs": ["10.10.1.5"]}$extra]},
  {"id": "vpc", "name": "vpc", "type": "cloud", "port": "eth0",
   "ip": {"subnet": "10.3.0.0/24", "dhcp_range": {"start": "10.3.0.100", "end": "10.3.0.200"}},
   "vpn": {"remote": "192.0.2.2", "local_id": "device", "remote_id": "peer", "auth": {"psk": "$psk"},
           "remote_subnets": ["172.31.0.0/24"], "ike_lifetime_secs": 120, "child_lifetime_secs": 40}},
  {"id": "fleet", "name": "fleet", "type": "mesh", "port": "eth0",
   "ip": {"subnet": "10.200.0.0/16", "dhcp_range": {"start": "10.200.1.10", "end": "10.200.1.100"}},
   "mesh": {"instance_id": 1000, "map_servers": [{"address": "192.0.2.2", "key": "ms-secret"}],
            "map_resolvers": ["192.0.2.2"], "register_secs": 5}}],
 "apps": [
  {"id": "a1", "name": "web", "interfaces": [{"name": "eth0", "network": "lan", "ip": "10.10.1.6", "attach": {"netns": "/run/netns/$P-e1"}}]},
  {"id": "a2", "name": "api", "interfaces": [{"name": "eth0", "network": "lan", "ip": "10.10.1.7", "attach": {"netns": "/run/netns/$P-e2"}}]},
  {"id": "a3", "name": "cam", "interfaces": [{"name": "eth0", "network": "lan", "attach": {"netns": "/run/netns/$P-e3"}}]},
  {"id": "a4", "name": "vm", "interfaces": [{"name": "eth0", "network": "lan", "attach": {"netns": "/run/netns/$P-e4"}}]},
  {"id": "ac", "name": "erp", "interfaces": [{"name": "eth0", "network": "vpc", "ip": "10.3.0.5", "attach": {"netns": "/run/netns/$P-ec"}}]},
  {"id": "am", "name": "scada", "interfaces": [{"name": "eth0", "network": "fleet", "ip": "10.200.1.5", "attach": {"netns": "/run/netns/$P-em"}}]}]}
JSON
}
config 1 0 >"$W/device.json"
cat >"$W/peer.json" <<JSON
{"device_id": "soak-peer", "ports": [{"name": "eth0", "ifname": "eth0"}],
 "networks": [{"id": "vpn", "name": "vpn", "type": "cloud", "port": "eth0",
   "ip": {"subnet": "172.31.0.0/24", "dhcp_range": {"start": "172.31.0.100", "end": "172.31.0.200"}},
   "vpn": {"remote": "192.0.2.1", "local_id": "peer", "remote_id": "device", "auth": {"psk": "$psk"},
           "remote_subnets": ["10.3.0.0/24"], "initiator": false}}],
 "apps": [{"id": "host", "name": "host", "interfaces": [{"name": "eth0", "network": "vpn", "ip": "172.31.0.5",
   "attach": {"netns": "/run/netns/$P-ph"}}]}]}
JSON
cat >"$W/ms.json" <<JSON
{"listen": "192.0.2.2", "registration_timeout_secs": 30,
 "sites": [{"name": "fleet", "key": "ms-secret", "instance_id": 1000, "eid_prefixes": ["10.200.0.0/16"]}]}
JSON
mkdir -m 0700 "$W/state" "$W/peer-state" "$W/ms-state"
ip netns exec "$P-peer" "$BIN" run --config "$W/peer.json" --state-dir "$W/peer-state" --log-level warn >"$W/peer.log" 2>&1 &
peer_pid=$!
pids+=($peer_pid)
in_ns "$P-peer" "$BIN" map-server --config "$W/ms.json" --state-dir "$W/ms-state" --log-level warn >"$W/ms.log" 2>&1 &
pids+=($!)
# `ip netns exec` execs econet, so $! is econet's pid (not through a shell function,
# which would run in a subshell).
ip netns exec "$P-dev" "$BIN" run --config "$W/device.json" --state-dir "$W/state" --log-level warn >"$W/econet.log" 2>&1 &
epid=$!
pids+=($epid)
status_json() { "$BIN" status --json --state-dir "$W/state" 2>/dev/null || true; }
deadline=$((SECONDS + 60))
until status_json | grep -q '"state":"established"' && status_json | grep -q '"registered":true'; do
  if ((SECONDS > deadline)); then
    echo "soak: the VPN or the mesh did not come up within 60 s" >&2
    "$BIN" status --state-dir "$W/state" >&2 || true
    tail -20 "$W/econet.log" >&2
    exit 1
  fi
  sleep 0.5
done
ip -n "$P-ec" addr add 10.3.0.5/24 dev eth0
ip -n "$P-ec" route add default via 10.3.0.1
ip -n "$P-ph" addr add 172.31.0.5/24 dev eth0
ip -n "$P-ph" route add default via 172.31.0.1
ip -n "$P-em" addr add 10.200.1.5/16 dev eth0
# The DNS clients have static addresses; the churn comes from the others.
ip -n "$P-e1" addr add 10.10.1.6/24 dev eth0
ip -n "$P-e2" addr add 10.10.1.7/24 dev eth0

END=$((SECONDS + DURATION))
count_file() { echo $(($(cat "$1" 2>/dev/null || echo 0) + 1)) >"$1"; }
# Config reloads.
(
  v=1
  while ((SECONDS < END)); do
    sleep 20
    v=$((v + 1))
    config "$v" $((v % 2)) >"$W/device.json.new" && mv "$W/device.json.new" "$W/device.json"
    kill -HUP "$epid" 2>/dev/null && count_file "$W/n-reloads"
  done
) &
pids+=($!)
# DHCP churn: an ECO leases and releases; guests with new MACs lease and go.
for e in 3; do
  (
    while ((SECONDS < END)); do
      in_ns "$P-e$e" busybox udhcpc -q -n -R -i eth0 -s /bin/true -t 3 -T 1 >/dev/null 2>&1 && count_file "$W/n-leases-e$e"
      sleep 1
    done
  ) &
  pids+=($!)
done
(
  i=0
  while ((SECONDS < END)); do
    i=$((i + 1))
    g=g$((i % 4))
    mac=$(printf '02:5a:%02x:%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
    ip -n "$P-e4" link add link eth0 name "$g" type macvlan 2>/dev/null || true
    ip -n "$P-e4" link set "$g" address "$mac" up 2>/dev/null || true
    in_ns "$P-e4" busybox udhcpc -q -n -R -i "$g" -s /bin/true -t 3 -T 1 >/dev/null 2>&1 && count_file "$W/n-guests"
    ip -n "$P-e4" link del "$g" 2>/dev/null || true
  done
) &
pids+=($!)
# DNS load: local names, and random forwarded names (the cache turns over).
(
  while ((SECONDS < END)); do
    in_ns "$P-e1" dig +short +tries=1 +time=1 @10.10.1.1 db.eco.internal >/dev/null 2>&1 && count_file "$W/n-dns"
    in_ns "$P-e1" dig +short +tries=1 +time=1 @10.10.1.1 "r$RANDOM$RANDOM.soak.test" >/dev/null 2>&1 && count_file "$W/n-dns"
    in_ns "$P-e2" dig +tcp +short +tries=1 +time=1 @10.10.1.1 web.eco.internal >/dev/null 2>&1 && count_file "$W/n-dns"
    sleep 0.05
  done
) &
pids+=($!)
# Traffic through the tunnel (which rekeys meanwhile).
(
  while ((SECONDS < END)); do
    in_ns "$P-ec" ping -c 5 -i 0.2 -W 1 -q 172.31.0.5 >/dev/null 2>&1 && count_file "$W/n-vpn-ok"
    count_file "$W/n-vpn-tries"
  done
) &
pids+=($!)

sample() {
  local rss fds lease prss
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$epid/status" 2>/dev/null || echo 0)
  fds=$(ls "/proc/$epid/fd" 2>/dev/null | wc -l)
  lease=$(stat -c %s "$W/state/leases-lan.txt" 2>/dev/null || echo 0)
  prss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$peer_pid/status" 2>/dev/null || echo 0)
  echo "$1 $rss $fds $lease $prss"
}
echo "soak: ${DURATION} s, a sample every ${SAMPLE} s (econet pid $epid)"
printf '%8s %10s %5s %12s %14s\n' "t (s)" "RSS KiB" "fds" "lease bytes" "peer RSS KiB"
start=$SECONDS
: >"$W/samples"
while ((SECONDS < END)); do
  sleep "$SAMPLE"
  s=$(sample $((SECONDS - start)))
  echo "$s" >>"$W/samples"
  read -r t rss fds lease prss <<<"$s"
  printf '%8s %10s %5s %12s %14s\n' "$t" "$rss" "$fds" "$lease" "$prss"
  kill -0 "$epid" 2>/dev/null || break
done
sleep 2

fail=0
bad() { echo "FAIL: $*"; fail=1; }
kill -0 "$epid" 2>/dev/null || bad "econet is gone; its log:$(tail -5 "$W/econet.log")"
n=$(wc -l <"$W/samples")
((n >= 4)) || bad "only $n samples"
half=$(((n + 1) / 2))
first_peak=$(head -n "$half" "$W/samples" | awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }')
second_peak=$(tail -n +$((half + 1)) "$W/samples" | awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }')
fd_first=$(head -n 1 "$W/samples" | awk '{ print $3 }')
fd_max=$(awk 'BEGIN { m = 0 } $3 > m { m = $3 } END { print m }' "$W/samples")
lease_max=$(awk 'BEGIN { m = 0 } $4 > m { m = $4 } END { print m }' "$W/samples")
((second_peak <= first_peak + first_peak / 10 + 256)) ||
  bad "RSS grew: first half peak $first_peak KiB, second half peak $second_peak KiB"
((fd_max <= fd_first + 8)) || bad "descriptors grew from $fd_first to $fd_max"
# 51 pool addresses plus ECOs, at most ~200 bytes a line, plus journal lines between
# snapshots: a file that only grows would pass this within minutes.
((lease_max <= 64 * 1024)) || bad "the lease file grew to $lease_max bytes"
doc=$(status_json)
grep -q '"applied":true' <<<"$doc" || bad "config not applied at the end"
grep -q '"state":"established"' <<<"$doc" || bad "the tunnel is not up at the end"
grep -q '"registered":true' <<<"$doc" || bad "the mesh is not registered at the end"
reloads=$(cat "$W/n-reloads" 2>/dev/null || echo 0)
leases=$(cat "$W/n-leases-e3" 2>/dev/null || echo 0)
guests=$(cat "$W/n-guests" 2>/dev/null || echo 0)
dns=$(cat "$W/n-dns" 2>/dev/null || echo 0)
vpn_ok=$(cat "$W/n-vpn-ok" 2>/dev/null || echo 0)
vpn_tries=$(cat "$W/n-vpn-tries" 2>/dev/null || echo 0)
rekeys=$(grep -o '"child_rekeys":[0-9]*' <<<"$doc" | head -1 | cut -d: -f2)
ike_rekeys=$(grep -o '"ike_rekeys":[0-9]*' <<<"$doc" | head -1 | cut -d: -f2)
echo "loads: $reloads reloads, $leases ECO leases, $guests guest leases, $dns DNS answers, tunnel pings ok $vpn_ok of $vpn_tries rounds, ${rekeys:-0} CHILD and ${ike_rekeys:-0} IKE rekeys"
echo "RSS: first half peak $first_peak KiB, second half peak $second_peak KiB; fds $fd_first..$fd_max; lease file at most $lease_max bytes"
((reloads >= DURATION / 30)) || bad "too few reloads ran ($reloads)"
((guests >= DURATION / 30)) || bad "too few guest leases ($guests)"
((leases >= DURATION / 30)) || bad "too few ECO leases ($leases)"
((dns >= DURATION)) || bad "too few DNS answers ($dns)"
((${rekeys:-0} >= DURATION / 60)) || bad "too few CHILD SA rekeys (${rekeys:-0})"
((vpn_ok * 10 >= vpn_tries * 9)) || bad "tunnel pings failed in $((vpn_tries - vpn_ok)) of $vpn_tries rounds"
exit "$fail"
