#!/usr/bin/env bash
# Benchmark (not a test): apply 64 switch networks with 4 container ECOs each (256
# veth pairs into 256 ECO namespaces, 64 bridges) three ways in the same run, each in
# a fresh device namespace:
#   econet    `econet run` from cold until status says applied (and its own pass time)
#   ip        one `ip` command per object
#   ip-batch  `ip -batch` for the device side, plus one `ip -n ECO` per far end (a
#             veth end can only be set up from inside its namespace, as econet does)
# Prints the times, the ratios, and econet's peak RSS. Run as root.
# Usage: tests/bench/switch_apply.sh [NETWORKS] [ECOS_PER_NETWORK]
set -euo pipefail
cd "$(dirname "$0")/../.."
NETS=${1:-64}
PER=${2:-4}
P="ecbench$$"
TMP=$(mktemp -d)
ECONET_PID=""

cleanup() {
  [ -n "$ECONET_PID" ] && kill "$ECONET_PID" 2>/dev/null || true
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
cargo build --release --quiet
BIN=$PWD/target/release/econet

now_ms() { date +%s%3N; }

make_ecos() { # $1: tag
  for n in $(seq 1 "$NETS"); do for e in $(seq 1 "$PER"); do
    ip netns add "$P-$1-e$n-$e"
  done; done
}

# --- econet
ip netns add "$P-econet-dev"
make_ecos econet
{
  echo '{"device_id": "bench", "config_version": "1", "ports": [], "networks": ['
  for n in $(seq 1 "$NETS"); do
    [ "$n" -gt 1 ] && echo ','
    echo "{\"id\": \"net-$n\", \"name\": \"sw$n\", \"type\": \"switch\"}"
  done
  echo '], "apps": ['
  first=1
  for n in $(seq 1 "$NETS"); do for e in $(seq 1 "$PER"); do
    [ $first -eq 0 ] && echo ','
    first=0
    echo "{\"id\": \"app-$n-$e\", \"name\": \"a$n-$e\", \"interfaces\": [{\"name\": \"eth0\", \"network\": \"net-$n\", \"attach\": {\"netns\": \"/run/netns/$P-econet-e$n-$e\"}}]}"
  done; done
  echo ']}'
} > "$TMP/config.json"
"$BIN" check "$TMP/config.json" >/dev/null
t0=$(now_ms)
ip netns exec "$P-econet-dev" "$BIN" run --config "$TMP/config.json" --state-dir "$TMP/state" --log-level warn &
ECONET_PID=$!
for _ in $(seq 1 600); do
  if "$BIN" status --json --state-dir "$TMP/state" 2>/dev/null | grep -q '"applied":true'; then break; fi
  sleep 0.05
done
t1=$(now_ms)
status=$("$BIN" status --json --state-dir "$TMP/state")
echo "$status" | grep -q '"applied":true' || { echo "econet did not apply within 30 s" >&2; exit 1; }
pass_ms=$(echo "$status" | sed -n 's/.*"last_apply_ms":\([0-9]*\).*/\1/p')
changes=$(echo "$status" | sed -n 's/.*"total_changes":\([0-9]*\).*/\1/p')
online=$(echo "$status" | grep -o '"state":"online"' | wc -l)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$ECONET_PID/status")
econet_ms=$((t1 - t0))
kill "$ECONET_PID"; wait "$ECONET_PID" 2>/dev/null || true; ECONET_PID=""

# --- ip, one command per object (what econet does: bridge with STP off and no
# forward delay, alias, up; veth with MAC, MTU, master, alias; far end up).
ip netns add "$P-ip-dev"
make_ecos ip
t0=$(now_ms)
D="$P-ip-dev"
for n in $(seq 1 "$NETS"); do
  ip -n "$D" link add "sw$n" type bridge stp_state 0 forward_delay 0
  ip -n "$D" link set "sw$n" alias "econet:net:net-$n" addrgenmode none up
  for e in $(seq 1 "$PER"); do
    ip -n "$D" link add "v$n-$e" mtu 1500 master "sw$n" type veth peer name eth0 netns "$P-ip-e$n-$e"
    ip -n "$D" link set "v$n-$e" alias "econet:ep:net-$n:app-$n-$e:eth0" addrgenmode none up
    ip -n "$P-ip-e$n-$e" link set eth0 up
  done
done
t1=$(now_ms)
ip_ms=$((t1 - t0))

# --- ip -batch
ip netns add "$P-batch-dev"
make_ecos batch
{
  for n in $(seq 1 "$NETS"); do
    echo "link add sw$n type bridge stp_state 0 forward_delay 0"
    echo "link set sw$n alias econet:net:net-$n addrgenmode none up"
    for e in $(seq 1 "$PER"); do
      echo "link add v$n-$e mtu 1500 master sw$n type veth peer name eth0 netns $P-batch-e$n-$e"
      echo "link set v$n-$e alias econet:ep:net-$n:app-$n-$e:eth0 addrgenmode none up"
    done
  done
} > "$TMP/batch"
t0=$(now_ms)
ip -n "$P-batch-dev" -batch "$TMP/batch"
for n in $(seq 1 "$NETS"); do for e in $(seq 1 "$PER"); do
  ip -n "$P-batch-e$n-$e" link set eth0 up
done; done
t1=$(now_ms)
batch_ms=$((t1 - t0))

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }'; }
echo
echo "switch apply: $NETS networks x $PER ECOs ($((NETS * PER)) veth pairs into as many namespaces)"
printf "  %-34s %8s ms\n" "econet run, cold start to applied" "$econet_ms"
printf "  %-34s %8s ms  (%s kernel changes, %s/%s networks online)\n" "  of which econet's reconcile pass" "$pass_ms" "$changes" "$online" "$NETS"
printf "  %-34s %8s ms  (econet %sx faster)\n" "ip, one command per object" "$ip_ms" "$(ratio "$ip_ms" "$econet_ms")"
printf "  %-34s %8s ms  (econet %sx faster)\n" "ip -batch + ip -n per far end" "$batch_ms" "$(ratio "$batch_ms" "$econet_ms")"
printf "  %-34s %8s KiB\n" "econet peak RSS (VmHWM)" "$rss_kb"
