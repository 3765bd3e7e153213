#!/usr/bin/env bash
# Benchmark (not a test): econet's DHCPv6 server against dnsmasq 2.90's, same run, same
# topology. DHCPv6 addresses are per ECO endpoint, so N leases take N endpoints: N taps
# on bridges in a device namespace, at most 1000 a bridge (Linux bridges take 1023
# ports), each bridge a dual-stack local network (fd00:64::/64, fd00:65::/64, ...).
# The load generator (`cargo run --example dhcp6-load`, tests/bench/dhcp6_load.rs) runs
# in the device namespace, opens every tap and plays each ECO from its ECO MAC (as
# econet derives it), its link-local address and a DUID-LL of it, one IA_NA, W
# exchanges outstanding: Solicit with Rapid Commit → Reply, then, with fresh servers,
# Solicit, Advertise, Request, Reply.
#   econet                        N apps' interfaces attached as taps (`"attach":
#                                 {"tap": ...}`, econet makes the taps); leases
#                                 persisted as always (journal appended and fsync'd
#                                 before the Reply leaves, snapshot at most once a second)
#   dnsmasq                       the same taps (`ip tuntap`) on bridges with
#                                 fd00:6x::1/64, --dhcp-range=fd00:6x::1000,fd00:6x::ffff,
#                                 64,1h --enable-ra --dhcp-rapid-commit, lease file on
#                                 disk (rewritten on every change, no fsync)
#   dnsmasq --leasefile-ro
# Both topologies: multicast flooding off on the tap ports (`mcast_flood off`; a
# Solicit to ff02::1:2 would otherwise be copied to every other tap, N² frames that
# cost the generator, not the server, and capped both near 600 leases/s) and IPv6 off
# on them (each port's ff00::/8 route makes the kernel's lookup for every bridged
# multicast frame, br_netfilter's, walk N routes: 3/4 of the generator's CPU), and for
# dnsmasq a permanent neighbour entry for every ECO's link-local address (dnsmasq
# answers through the kernel, which would otherwise resolve each ECO first; econet
# frames its replies itself). All of it is the senders' cost, and the last favours
# dnsmasq. Each load run is made REPEAT times with a fresh server (no leases), and
# the run of median rate is shown. The generator starts once the server is idle after
# the taps came up (econet reconciles then: a pass of about a second for 2000
# endpoints, in which it serves nothing; started within it, a run lost a whole window
# to the 1 s retransmission timeout).
# Then the time from `dhclient -6` start (one-shot, fresh lease file and DUID) to the
# address applied by its hook, in new ECO namespaces on veth endpoints, RUNS times each
# (median), against econet and dnsmasq: dhclient as it comes (Solicit, then it waits
# its first retransmission time, about a second, for more Advertises, as RFC 8415
# §18.2.1 has it for an Advertise of preference below 255) and with
# `send dhcp6.rapid-commit;`.
# Prints leases/s (overall and per 1000 leases), latency p50/p99, the servers' CPU per
# lease and peak RSS, the lease files' lines and the ratios. Run as root.
# Usage: tests/bench/dhcp6.sh [LEASES] [WINDOW] [RUNS] [REPEAT]
#   (defaults 2000 128 5 3; RUNS <= 11)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-2000}
W=${2:-128}
RUNS=${3:-5}
REPEAT=${4:-3}
SEQ=$((N < 200 ? N : 200)) # ECOs for the one-at-a-time run
LIMIT=60 # seconds per load run, at most
PER_NET=1000 # endpoints a bridge (a multiple of 8, the interfaces of an app)
NETS=$(((N + PER_NET - 1) / PER_NET))
P="ec6b$$"
TMP=$(mktemp -d)
chmod 755 "$TMP" # dnsmasq drops privileges
SERVER_PID=""

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
  echo "dhcp6.sh: $1 is missing; installing the Debian package $2" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$2" >&2
}
need dnsmasq dnsmasq-base
need dhclient isc-dhcp-client
[ "$N" -ge 1 ] && [ "$N" -le 4000 ] || { echo "LEASES must be 1 to 4000 (512 apps of 8 interfaces)" >&2; exit 2; }
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 11 ] || { echo "RUNS must be 1 to 11" >&2; exit 2; }
ECOS=$((2 * RUNS)) # dhclient ECOs: RUNS as it comes, RUNS with rapid commit
cargo build --release --quiet --bin econet --example dhcp6-load
BIN=${ECONET_BIN:-$PWD/target/release/econet} # ECONET_BIN: compare another build
GEN=$PWD/target/release/examples/dhcp6-load
DNSMASQ=$(command -v dnsmasq)
DHCLIENT=$(command -v dhclient)

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
ns_add() { ip netns add "$1"; ip -n "$1" link set lo up; }
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{v[NR]=$1} END {print (NR ? v[int((NR+1)/2)] : "-")}'; }
prefix() { printf 'fd00:%x' $((0x64 + $1)); } # network $1's /64, without the "::"
# Without DAD an address is usable at once; the ECO namespaces' links inherit it.
no_dad() { ip netns exec "$1" sh -c 'for c in all default; do echo 0 > /proc/sys/net/ipv6/conf/$c/accept_dad; done'; }

# Multicast flooding and IPv6 off on taps 0..N-1 of device $1 (see the top).
quiet_ports() {
  for k in $(seq 0 $((N - 1))); do echo "link set dev t$k type bridge_slave mcast_flood off"; done |
    ip -n "$1" -batch -
  ip netns exec "$1" sh -c "for k in \$(seq 0 $((N - 1))); do echo 1 > /proc/sys/net/ipv6/conf/t\$k/disable_ipv6; done"
}

# ---------------------------------------------------------------- dhclient -6
HOOK=$TMP/hook6
cat > "$HOOK" <<'EOF'
#!/bin/sh
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    ip -6 addr replace "$new_ip6_address/${new_ip6_prefixlen:-128}" dev "$interface" nodad
    date +%s%N > "$(dirname "$0")/bound" ;; # dhclient passes hooks no environment
esac
exit 0
EOF
chmod +x "$HOOK"
RC_CONF=$TMP/rapid-commit.conf
echo 'send dhcp6.rapid-commit;' > "$RC_CONF"
# dhclient -6 in ECO namespace $1 (its eth0 has its link-local address), extra options
# after, from start to the address applied by its hook: ms.
dhclient_ms() {
  local d=$TMP/dhc-$1 t0
  mkdir -p "$d"
  cp "$HOOK" "$d/hook"
  for _ in $(seq 1 100); do
    ip -n "$1" -6 addr show dev eth0 scope link 2>/dev/null | grep -q 'fe80' && break
    sleep 0.05
  done
  t0=$(date +%s%N)
  timeout 20 ip netns exec "$1" "$DHCLIENT" -6 -1 "${@:2}" -sf "$d/hook" \
    -pf "$d/pid" -lf "$d/leases" eth0 >/dev/null 2>&1 || true
  [ -s "$d/pid" ] && kill "$(cat "$d/pid")" 2>/dev/null || true
  if [ -s "$d/bound" ]; then echo $((($(cat "$d/bound") - t0) / 1000000)); else echo "-"; fi
}

# Runs the generator in device namespace $1 against server $SERVER_PID, extra options
# after; sets LOAD_OUT.
load() {
  local dev=$1 out
  shift
  out=$(timeout $((LIMIT + 60)) ip netns exec "$dev" "$GEN" client --count "$N" --window "$W" \
    --time-limit "$LIMIT" --server-pid "$SERVER_PID" "$@")
  echo "$out" | sed 's/^/    /' >&2
  LOAD_OUT=$(grep '^RESULT' <<<"$out")
}
# REPEAT times: `$1` (starts a fresh server), `load $2 ${@:3}`, `$STOP`; sets LOAD_OUT
# to the run of median rate.
loads() {
  local start=$1 dev=$2 all=""
  shift 2
  for _ in $(seq 1 "$REPEAT"); do
    $start
    load "$dev" "$@"
    all="$all$LOAD_OUT"$'\n'
    $STOP
  done
  LOAD_OUT=$(grep . <<<"$all" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^rate=/) print substr($i, 6), $0 }' |
    sort -n | awk '{ v[NR] = $0 } END { print v[int((NR + 1) / 2)] }' | cut -d' ' -f2-)
  echo "  median of $REPEAT: $(field rate "$LOAD_OUT") leases/s" >&2
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

# ---------------------------------------------------------------- econet
E_DEV="$P-e-dev"
ns_add "$E_DEV"
for i in $(seq 1 "$ECOS"); do ns_add "$P-e-u$i"; no_dad "$P-e-u$i"; done
{
  echo '{"device_id": "bench", "config_version": "1", "ports": [], "networks": ['
  for n in $(seq 0 $((NETS - 1))); do
    [ "$n" -gt 0 ] && echo ','
    echo "{\"id\": \"b$n\", \"name\": \"b$n\", \"type\": \"local\","
    echo " \"ip\": {\"subnet\": \"10.$((64 + n)).0.0/16\", \"subnet6\": \"$(prefix "$n")::/64\"}}"
  done
  echo '], "apps": ['
  # ECO k: interface eth(k % 8) of app a(k / 8), tap tk, network b(k / PER_NET).
  for a in $(seq 0 $(((N + 7) / 8 - 1))); do
    ifs=""
    for j in $(seq 0 7); do
      k=$((a * 8 + j))
      [ "$k" -lt "$N" ] || break
      ifs="$ifs${ifs:+, }{\"name\": \"eth$j\", \"network\": \"b$((k / PER_NET))\", \"attach\": {\"tap\": \"t$k\"}}"
    done
    echo "{\"id\": \"a$a\", \"name\": \"a$a\", \"interfaces\": [$ifs]},"
  done
  for i in $(seq 1 "$ECOS"); do
    [ "$i" -gt 1 ] && echo ','
    echo "{\"id\": \"u$i\", \"name\": \"u$i\", \"interfaces\": [{\"name\": \"eth0\", \"network\": \"b0\", \"attach\": {\"netns\": \"/run/netns/$P-e-u$i\"}}]}"
  done
  echo ']}'
} > "$TMP/econet.json"
"$BIN" check "$TMP/econet.json" >/dev/null

econet_start() {
  ip netns exec "$E_DEV" "$BIN" run --config "$TMP/econet.json" --state-dir "$TMP/econet" \
    --log-level warn 2>>"$TMP/econet.log" &
  SERVER_PID=$!
  local s
  for _ in $(seq 1 600); do
    s=$("$BIN" status --json --state-dir "$TMP/econet" 2>/dev/null || true)
    if grep -q '"applied":true' <<<"$s" && [ "$(grep -o '"state":"up"' <<<"$s" | wc -l)" -ge $((N + ECOS)) ]; then
      grep -q '"state":"error"' <<<"$s" && { echo "econet: a network is in error: $s" >&2; exit 1; }
      quiet_ports "$E_DEV"
      return 0
    fi
    sleep 0.05
  done
  echo "econet did not apply its config within 30 s" >&2
  exit 1
}
lease_lines() { # lease files $@: their lines but the headers
  cat "$@" 2>/dev/null | grep -vc '^econet-dhcp6-leases' || true
}

echo "econet: $N ECOs on taps, $NETS networks, window $W" >&2
econet_fresh() { # econet with no allocations
  rm -f "$TMP"/econet/leases6-*.txt
  econet_start
}
econet_start
e_dhc="" e_dhc_rc=""
for i in $(seq 1 "$RUNS"); do
  e_dhc="$e_dhc $(dhclient_ms "$P-e-u$i")"
  e_dhc_rc="$e_dhc_rc $(dhclient_ms "$P-e-u$((RUNS + i))" -cf "$RC_CONF")"
done
stop_server
# The lease files as the generator ends (the journal, appended and fsync'd before each
# Reply with an address leaves) and a second later (the snapshot), after one more run.
econet_fresh
load "$E_DEV"
e_lines_now=$(lease_lines "$TMP"/econet/leases6-b*.txt)
sleep 1.2
e_lines=$(lease_lines "$TMP"/econet/leases6-b*.txt)
stop_server
STOP=stop_server
loads econet_fresh "$E_DEV"
e_out=$LOAD_OUT
loads econet_fresh "$E_DEV" --four
e4_out=$LOAD_OUT
# The server's part of a client's time to an address: one new ECO at a time.
econet_fresh
load "$E_DEV" --count "$SEQ" --window 1
es_out=$LOAD_OUT
stop_server

# ---------------------------------------------------------------- dnsmasq
"$GEN" macs --count "$N" > "$TMP/macs"
D_DEV="$P-d-dev"
ns_add "$D_DEV"
no_dad "$D_DEV"
for n in $(seq 0 $((NETS - 1))); do
  ip -n "$D_DEV" link add "br$n" type bridge stp_state 0 forward_delay 0
  ip -n "$D_DEV" addr add "$(prefix "$n")::1/64" dev "br$n"
  ip -n "$D_DEV" link set "br$n" up
done
{
  for k in $(seq 0 $((N - 1))); do echo "tuntap add mode tap name t$k"; done
  for k in $(seq 0 $((N - 1))); do echo "link set t$k master br$((k / PER_NET)) addrgenmode none up"; done
  awk -v per=$PER_NET '{ printf "neigh add %s lladdr %s dev br%d nud permanent\n", $3, $2, int($1 / per) }' "$TMP/macs"
} | ip -n "$D_DEV" -batch -
quiet_ports "$D_DEV"
for i in $(seq 1 "$ECOS"); do
  ns_add "$P-d-u$i"
  no_dad "$P-d-u$i"
  ip -n "$D_DEV" link add "vu$i" type veth peer name eth0 netns "$P-d-u$i"
  ip -n "$D_DEV" link set "vu$i" master br0 addrgenmode none up
  ip -n "$P-d-u$i" link set eth0 up
done

dnsmasq_start() { # extra options
  local ranges=() ifs=()
  for n in $(seq 0 $((NETS - 1))); do
    ranges+=("--dhcp-range=$(prefix "$n")::1000,$(prefix "$n")::ffff,64,1h")
    ifs+=("--interface=br$n")
  done
  ip netns exec "$D_DEV" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --port=0 \
    "${ifs[@]}" --bind-interfaces "${ranges[@]}" --enable-ra --dhcp-rapid-commit \
    --dhcp-lease-max=70000 --quiet-dhcp6 --quiet-ra --log-facility="$TMP/dnsmasq.log" \
    --pid-file= "$@" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    ip netns exec "$D_DEV" ss -Hlun 'sport = :547' 2>/dev/null | grep -q . && return 0
    sleep 0.05
  done
  echo "dnsmasq did not start" >&2
  exit 1
}
dnsmasq_file() { # dnsmasq with an empty lease file
  rm -f "$TMP/dnsmasq.leases"
  dnsmasq_start --dhcp-leasefile="$TMP/dnsmasq.leases"
}
dnsmasq_ro() { dnsmasq_start --leasefile-ro; }
echo "dnsmasq, lease file: $N ECOs on taps, window $W" >&2
loads dnsmasq_file "$D_DEV"
f_out=$LOAD_OUT
f_lines=$(grep -vc '^duid' "$TMP/dnsmasq.leases" || true)
loads dnsmasq_file "$D_DEV" --four
f4_out=$LOAD_OUT
echo "dnsmasq --leasefile-ro: $N ECOs on taps, window $W" >&2
loads dnsmasq_ro "$D_DEV"
r_out=$LOAD_OUT
loads dnsmasq_ro "$D_DEV" --four
r4_out=$LOAD_OUT
dnsmasq_file
load "$D_DEV" --count "$SEQ" --window 1
fs_out=$LOAD_OUT
stop_server

dnsmasq_start --dhcp-leasefile="$TMP/dnsmasq-dhc.leases"
d_dhc="" d_dhc_rc=""
for i in $(seq 1 "$RUNS"); do
  d_dhc="$d_dhc $(dhclient_ms "$P-d-u$i")"
  d_dhc_rc="$d_dhc_rc $(dhclient_ms "$P-d-u$((RUNS + i))" -cf "$RC_CONF")"
done
stop_server

# ---------------------------------------------------------------- the generator alone
brs=$(seq -s, -f 'br%g' 0 $((NETS - 1)))
responder() {
  ip netns exec "$D_DEV" timeout $((LIMIT + 30)) "$GEN" respond "$brs" --secs $((LIMIT + 20)) >/dev/null &
  SERVER_PID=$!
  sleep 0.5 # its sockets are open by then
}
echo "the generator alone" >&2
loads responder "$D_DEV"
g_out=$LOAD_OUT
loads responder "$D_DEV" --four
g4_out=$LOAD_OUT

# ---------------------------------------------------------------- report
row() { # label, RESULT line
  printf "  %-36s %8s %8s %8s %15s %5s %5s %9s us %7s KiB\n" "$1" "$(field rate "$2")" \
    "$(field p50_ms "$2")" "$(field p99_ms "$2")" "$(field bucket_min "$2")..$(field bucket_max "$2")" \
    "$(field retransmits "$2")" "$(field failures "$2")" "$(field server_cpu_us_per_lease "$2")" \
    "$(field server_hwm_kb "$2")"
}
echo
echo "DHCPv6: $N new ECOs, one tap each, on $NETS bridge(s), $W exchanges outstanding, median of $REPEAT runs;" \
  "load $(cut -d' ' -f1-3 /proc/loadavg) at the end ($LOAD0 at the start)"
printf "  %-36s %8s %8s %8s %15s %5s %5s %12s %11s\n" "" "leases/s" "p50 ms" "p99 ms" "per 1000 min..max" \
  "retx" "fail" "server CPU" "peak RSS"
row "econet, rapid commit (lease file)" "$e_out"
row "dnsmasq, rapid commit, lease file" "$f_out"
row "dnsmasq, rapid commit, --leasefile-ro" "$r_out"
row "econet, 4 messages (lease file)" "$e4_out"
row "dnsmasq, 4 messages, lease file" "$f4_out"
row "dnsmasq, 4 messages, --leasefile-ro" "$r4_out"
echo "  lease files after a rapid-commit run: econet $e_lines_now lines as the last Reply left" \
  "(journal, fsync'd), $e_lines a second later (snapshot); dnsmasq $f_lines leases"
echo "  Advertise to a rapid-commit Solicit: econet $(field advertised "$e_out"), dnsmasq $(field advertised "$f_out")"
row "the generator alone, rapid commit" "$g_out"
row "the generator alone, 4 messages" "$g4_out"
echo "  (the generator alone: against a trivial stateless responder on the bridges, what it can drive;" \
  "its own CPU against econet $(field gen_cpu_us_per_lease "$e_out") us per lease)"
echo
echo "Solicit (rapid commit) to Reply, one new ECO at a time ($SEQ ECOs): the server's part of a client's time to an address"
printf "  %-36s p50 %6s ms, p99 %6s ms\n" "econet (lease file)" "$(field p50_ms "$es_out")" "$(field p99_ms "$es_out")"
printf "  %-36s p50 %6s ms, p99 %6s ms\n" "dnsmasq, lease file" "$(field p50_ms "$fs_out")" "$(field p99_ms "$fs_out")"
echo
echo "dhclient -6 start to address applied, new ECO (median of $RUNS; each run in ms; dhclient first waits"
echo "a random 0-1 s, RFC 8415 SOL_MAX_DELAY, and as it comes then collects Advertises for about a second)"
printf "  %-36s %6s ms   (%s )\n" "econet" "$(median <<<"$e_dhc")" "$e_dhc"
printf "  %-36s %6s ms   (%s )\n" "dnsmasq" "$(median <<<"$d_dhc")" "$d_dhc"
printf "  %-36s %6s ms   (%s )\n" "econet, dhclient with rapid commit" "$(median <<<"$e_dhc_rc")" "$e_dhc_rc"
printf "  %-36s %6s ms   (%s )\n" "dnsmasq, dhclient with rapid commit" "$(median <<<"$d_dhc_rc")" "$d_dhc_rc"
echo
e_rate=$(field rate "$e_out")
echo "  econet vs dnsmasq with lease file, rapid commit   $(ratio "$e_rate" "$(field rate "$f_out")")x leases/s (goal 10x)"
echo "  econet vs dnsmasq --leasefile-ro, rapid commit    $(ratio "$e_rate" "$(field rate "$r_out")")x leases/s"
echo "  econet vs dnsmasq with lease file, 4 messages     $(ratio "$(field rate "$e4_out")" "$(field rate "$f4_out")")x leases/s"
echo "  econet vs dnsmasq --leasefile-ro, 4 messages      $(ratio "$(field rate "$e4_out")" "$(field rate "$r4_out")")x leases/s"
echo "  econet vs dnsmasq, server CPU per lease, rapid commit with lease file  $(ratio "$(field server_cpu_us_per_lease "$f_out")" "$(field server_cpu_us_per_lease "$e_out")")x less"
echo "  one new ECO at a time, p50 Solicit to Reply, dnsmasq / econet  $(ratio "$(field p50_ms "$fs_out")" "$(field p50_ms "$es_out")")x"
echo "  dhclient -6 time to address, dnsmasq / econet     $(ratio "$(median <<<"$d_dhc")" "$(median <<<"$e_dhc")")x, with rapid commit $(ratio "$(median <<<"$d_dhc_rc")" "$(median <<<"$e_dhc_rc")")x"
