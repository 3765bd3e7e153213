#!/usr/bin/env bash
# Benchmark (not a test): the controller client. Runs econet (release build) against
# the test controller (tests/tools/controller.py, real TLS with client certificates)
# in namespaces, and prints:
#   - how long one poll cycle takes when nothing changed (GET with If-None-Match → 304),
#     median and max over the polls of 20 s, and econet's CPU per poll;
#   - the event loop's worst stall while the controller takes 5 s to answer, with an
#     ECO getting a DHCP lease meanwhile (the HTTPS exchange is on its own thread).
# Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
P="ecbctl$$"
TMP=$(mktemp -d)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
cargo build --release --quiet
BIN=${BIN:-$PWD/target/release/econet}
for n in dev ctl eco; do ip netns add "$P-$n"; done
ip -n "$P-dev" link add eth0 type veth peer name eth0 netns "$P-ctl"
ip -n "$P-dev" addr add 192.0.2.2/24 dev eth0; ip -n "$P-dev" link set eth0 up
ip -n "$P-ctl" addr add 192.0.2.1/24 dev eth0; ip -n "$P-ctl" link set eth0 up
mkdir -p "$TMP/certs" "$TMP/site"
/usr/bin/python3 tests/tools/certs.py "$TMP/certs" 192.0.2.1
cat > "$TMP/site/config.json" <<EOF
{"device_id": "device-42", "config_version": "1", "ports": [],
 "networks": [{"id": "n1", "name": "lan", "type": "local", "ip": {"subnet": "10.1.0.0/24"}}],
 "apps": [{"id": "a1", "name": "web", "interfaces": [{"name": "eth0", "network": "n1", "attach": {"netns": "/run/netns/$P-eco"}}]}]}
EOF
printf '"v1"' > "$TMP/site/etag"
ip netns exec "$P-ctl" /usr/bin/python3 tests/tools/controller.py "$TMP/site" 192.0.2.1 8443 \
  "$TMP/certs/server.pem" "$TMP/certs/server.key" "$TMP/certs/ca.pem" 120 &
PIDS+=($!)
for _ in $(seq 1 50); do [ -f "$TMP/site/ready" ] && break; sleep 0.1; done
ip netns exec "$P-dev" "$BIN" run --controller https://192.0.2.1:8443 --ca "$TMP/certs/ca.pem" \
  --cert "$TMP/certs/device.pem" --key "$TMP/certs/device.key" --poll-interval 1 \
  --state-dir "$TMP/state" --log-level warn 2> "$TMP/econet.log" &
EPID=$!
PIDS+=($EPID)
for _ in $(seq 1 100); do
  "$BIN" status --json --state-dir "$TMP/state" 2>/dev/null | grep -q '"applied":true' && break
  sleep 0.1
done
ticks() { awk '{print $14 + $15}' "/proc/$EPID/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); polls0=$(grep -c 'inm="v1"' "$TMP/site/requests.log" || true)
samples=()
for _ in $(seq 1 20); do
  sleep 1
  ms=$("$BIN" status --json --state-dir "$TMP/state" | sed -n 's/.*"poll_ms":\([0-9]*\).*/\1/p')
  [ -n "$ms" ] && samples+=("$ms")
done
t1=$(ticks); polls1=$(grep -c 'inm="v1"' "$TMP/site/requests.log" || true)
polls=$((polls1 - polls0))
sorted=$(printf '%s\n' "${samples[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
max=$(echo "$sorted" | tail -1)
cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$polls" 'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n; else print "-" }')

# A slow controller: 5 s per reply; poll now and get a lease meanwhile.
echo 5 > "$TMP/site/delay"; printf '"slow"' > "$TMP/site/etag"
kill -HUP "$EPID"
sleep 0.3
cat > "$TMP/hook" <<'EOF'
#!/bin/sh
[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface"
exit 0
EOF
chmod +x "$TMP/hook"
s=$(date +%s%N)
ip netns exec "$P-eco" busybox udhcpc -f -q -n -i eth0 -s "$TMP/hook" -t 5 -T 1 >/dev/null 2>&1
e=$(date +%s%N)
sleep 5
st=$("$BIN" status --json --state-dir "$TMP/state")
worst=$(echo "$st" | sed -n 's/.*"loop_worst_ms":\([0-9]*\).*/\1/p')
recent=$(echo "$st" | sed -n 's/.*"loop_recent_ms":\([0-9]*\).*/\1/p')

echo
echo "controller client (release build, TLS 1.3 with client certificate, poll every 1 s)"
printf "  %-52s %s ms (max %s ms, %s polls)\n" "poll cycle with nothing changed (304), median" "$median" "$max" "$polls"
printf "  %-52s %s µs\n" "econet CPU per poll (both threads)" "$cpu_us"
printf "  %-52s %s ms\n" "DHCP lease while the controller takes 5 s" "$(( (e - s) / 1000000 ))"
printf "  %-52s %s ms\n" "event loop's worst stall during the slow reply" "$recent"
printf "  %-52s %s ms\n" "event loop's worst stall since start (first apply)" "$worst"
