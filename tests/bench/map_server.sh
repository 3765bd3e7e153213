#!/usr/bin/env bash
# Benchmark (not a test): `econet map-server` at fleet scale. A map-server namespace
# (198.51.100.1) and a fleet namespace joined by a veth; in the fleet namespace the load
# generator (`cargo run --example ms-load`, tests/bench/ms_load.rs) plays D xTRs with E
# EIDs each from S addresses (198.51.100.10.., one UDP socket on 4342 each):
#   - the config: one site per device, its own key and its own EID prefix (what
#     ms_config recommends for a fleet: a device cannot register another's EIDs),
#     registration_timeout_secs three register intervals;
#   - a burst of all D Map-Registers at once (after an outage), HMAC-SHA-256,
#     want-map-notify, retransmitted as an xTR does (2 s, 3 attempts);
#   - then REGISTER_SECS of steady state: every device re-registers every REGISTER_SECS,
#     spread evenly, while ITRs send ECM Map-Requests for registered EIDs at RATE a
#     second; every Map-Notify and Map-Reply is checked (nonce, MAC, EID, RLOC).
# The map server's RSS before the burst and once all are registered gives bytes per EID.
# R is EID registrations acknowledged per second in the steady state (D x E /
# REGISTER_SECS when it keeps up), Q the Map-Requests answered right per second, P99
# their latency. Run as root.
# Usage: [D=10000] [E=10] [RATE=100000] [REGISTER_SECS=60] [STEADY_SECS=REGISTER_SECS]
#        [SOCKETS=4] [MS_CPU=N GEN_CPU=M] tests/bench/map_server.sh
# MS_CPU and GEN_CPU pin the map server and the generator to one CPU each (taskset), so
# the map server has one core of its own (the goal is for one core). By default, with
# two CPUs or more, the map server takes the last and the generator the first; set
# them empty (MS_CPU= GEN_CPU=) not to pin.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${D:-10000}
E=${E:-10}
RATE=${RATE:-100000}
REGISTER_SECS=${REGISTER_SECS:-60}
STEADY_SECS=${STEADY_SECS:-$REGISTER_SECS}
SOCKETS=${SOCKETS:-4}
CPUS=$(nproc)
if [ "$CPUS" -ge 2 ]; then
  MS_CPU=${MS_CPU-$((CPUS - 1))}
  GEN_CPU=${GEN_CPU-0}
fi
P="ecbms$$"
TMP=$(mktemp -d)
MS_PID=""

cleanup() {
  if [ -n "$MS_PID" ]; then # SIGTERM, SIGKILL after 5 s
    kill "$MS_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$MS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$MS_PID" 2>/dev/null || true
    wait "$MS_PID" 2>/dev/null || true
    MS_PID=""
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  [ -n "$MS_PID" ] && wait "$MS_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
[ "$SOCKETS" -ge 1 ] && [ "$SOCKETS" -le 200 ] || { echo "SOCKETS must be 1..200" >&2; exit 2; }

cargo build --release --quiet --bin econet --example ms-load
BIN=${ECONET_BIN:-$PWD/target/release/econet} # ECONET_BIN: measure another build
GEN=$PWD/target/release/examples/ms-load
MS_IP=198.51.100.1

for n in ms fleet; do ip netns add "$P-$n"; ip -n "$P-$n" link set lo up; done
ip -n "$P-ms" link add eth0 type veth peer name eth0 netns "$P-fleet"
ip -n "$P-ms" addr add "$MS_IP/24" dev eth0
ip -n "$P-ms" link set eth0 up
SRC=""
for i in $(seq 1 "$SOCKETS"); do
  a=198.51.100.$((9 + i))
  ip -n "$P-fleet" addr add "$a/24" dev eth0
  SRC="${SRC:+$SRC,}$a"
done
ip -n "$P-fleet" link set eth0 up

"$GEN" config --devices "$D" --eids "$E" --listen "$MS_IP" --register-secs "$REGISTER_SECS" > "$TMP/ms.json"
"$BIN" map-server check "$TMP/ms.json" >/dev/null
pin() { # $1 CPU or empty
  if [ -n "$1" ]; then echo "taskset -c $1"; fi
}
ip netns exec "$P-ms" $(pin "${MS_CPU:-}") "$BIN" map-server --config "$TMP/ms.json" --state-dir "$TMP/ms" \
  --log-level error 2>"$TMP/ms.log" &
MS_PID=$!
# Up when its socket listens.
for _ in $(seq 1 300); do
  ip netns exec "$P-ms" ss -Hlun 'sport = :4342' 2>/dev/null | grep -q . && break
  kill -0 "$MS_PID" 2>/dev/null || { cat "$TMP/ms.log" >&2; exit 1; }
  sleep 0.1
done
sleep 0.5 # config parsed, RSS settled

ms_cpu() { awk '{print $14 + $15}' "/proc/$MS_PID/stat"; }
c0=$(ms_cpu)
out=$(timeout $((STEADY_SECS + 120)) ip netns exec "$P-fleet" $(pin "${GEN_CPU:-}") "$GEN" run --ms "$MS_IP" --src "$SRC" \
  --devices "$D" --eids "$E" --register-secs "$REGISTER_SECS" --steady-secs "$STEADY_SECS" \
  --rate "$RATE" --ms-pid "$MS_PID")
c1=$(ms_cpu)
echo "$out" | grep -v '^RESULT' >&2
TICK=$(getconf CLK_TCK)
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$MS_PID/status")
res=$(grep '^RESULT' <<<"$out")
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$res"; }
# What one core of the map server answers: the run's messages over its CPU time (the
# generator shares the machine; on a dedicated core this is the ceiling).
echo "  map server CPU $(awk -v t=$((c1 - c0)) -v k="$TICK" 'BEGIN { printf "%.1f", t / k }') s over the run" \
  "($(awk -v t=$((c1 - c0)) -v k="$TICK" -v q="$(field q_ok)" -v r="$(field reg_acked)" -v b="$D" \
    'BEGIN { s = t / k; if (s > 0) printf "%.0f Map-Requests + Map-Registers answered per CPU second", (q + r + b) / s }')), peak RSS $HWM KiB" >&2
# The first line of the text status has the count (the rest lists every EID).
regs=$("$BIN" map-server status --state-dir "$TMP/ms" 2>/dev/null | head -1 |
  sed -n 's/.*, \([0-9]*\) registered EIDs.*/\1/p' || true)
echo "  map server status: $regs EIDs registered at the end (of $((D * E)))" >&2
echo "map-server: $D devices x $E EIDs: $(field reg_rate) registrations/s, $(field q_rate) map-requests/s, $(field bytes_per_eid) bytes/EID, $(field p99_ms) ms"
