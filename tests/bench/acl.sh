#!/usr/bin/env bash
# Benchmark (not a test): per-endpoint ACLs (`acls`), econet against the incumbent in
# the same run. The incumbent is EVE's shape: iptables rules per ACE, one chain per
# endpoint and direction, jumped to from FORWARD by a linear list of `-s ADDR` and
# `-d ADDR` rules, applied with iptables-restore (Debian's `iptables`: the legacy
# binary by default, IPT=nft for iptables-nft); `host` ACEs as EVE does them, with
# dnsmasq on the bridge adding each address it answers to an ipset.
#
# One local network of 256 endpoints (255 taps and one container ECO, the last in
# every list), each with the same 16 ACEs; the tested flow, ECO to the upstream host,
# is matched by the 15th (iperf3's control connection) and 16th (its UDP data).
#   apply     4,096 ACEs applied from cold (econet: a reload of the same endpoints
#             without ACLs to one with them, timed from SIGHUP to status saying the
#             version is applied, a status reply being sent after the reconcile that
#             commits the rules; incumbent: iptables-restore of the ruleset), then one
#             endpoint's ACL changed (econet: a reload; incumbent: iptables-restore
#             --noflush replacing that endpoint's two chains). Median of 5.
#   forward   packets/s received through the device (iperf3 UDP, 64-byte payloads,
#             ECO to upstream host) with 0, 256 (16 endpoints) and 4,096 ACEs. The
#             incumbent twice: every packet walks the dispatch list and its chain (the
#             shape above), and with an ESTABLISHED,RELATED accept first in FORWARD.
#   learned   an ECO whose only ACE is `host bench.test` looks up NAMES fresh names
#             (each a new address) and connects the moment each answer arrives, with
#             0.9 s to connect (no SYN retransmission): how many first connects
#             succeed, and the time from the answer to the connection.
# Prints the figures, the ratios and the goals, last. Run as root.
# Usage: tests/bench/acl.sh [both|econet|incumbent]      (default both)
# Env:   IPT=legacy|nft  SECS=3 (per iperf3 run)  REPS=3 (runs, median)  NAMES=200
#        ECONET_BIN=path (an econet to use instead of building the release binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-both}
IPT_KIND=${IPT:-legacy}
SECS=${SECS:-3}
REPS=${REPS:-3}
NAMES=${NAMES:-200}
EPS=256
P="ecbacl$$"
TMP=$(mktemp -d)
ECONET_PID=""

cleanup() {
  [ -n "$ECONET_PID" ] && kill "$ECONET_PID" 2>/dev/null || true
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

case "$MODE" in both|econet|incumbent) ;; *) echo "usage: $0 [both|econet|incumbent]" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
for c in iperf3 dnsmasq python3; do
  command -v "$c" >/dev/null || { echo "needs $c (apt-get install $c)" >&2; exit 2; }
done
IPTB=iptables-$IPT_KIND
IPTR=iptables-$IPT_KIND-restore
if [ "$MODE" != econet ]; then
  command -v "$IPTB" >/dev/null || { echo "needs $IPTB (apt-get install iptables)" >&2; exit 2; }
  command -v ipset >/dev/null || { echo "needs ipset (apt-get install ipset)" >&2; exit 2; }
fi
if [ "$MODE" != incumbent ]; then
  if [ -n "${ECONET_BIN:-}" ]; then
    BIN=$ECONET_BIN
  else
    cargo build --release --quiet
    BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/econet
  fi
fi

# --- helpers
now() { echo "$EPOCHREALTIME"; }
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.1f", a / b; else print "-" }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "-") printf "%.0f", 100 * a / b; else print "-" }'; }

ACCEPTOR='
import select, socket
ls = []
for p in (80, 5202):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p)); s.listen(256); ls.append(s)
while True:
    for s in select.select(ls, [], [])[0]:
        c, _ = s.accept(); c.close()
'
PROBE='
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError:
    sys.exit(1)
'
# Looks up n1..nN.bench.test at the gateway; connects to each answer at once.
# Prints: ok N dns_median_ms connect_median_ms connect_p99_ms
LEARN='
import random, socket, struct, sys, time
server, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def skip(b, i):
    while True:
        l = b[i]
        if l == 0: return i + 1
        if l & 0xc0 == 0xc0: return i + 2
        i += 1 + l
ok, dns, lat = 0, [], []
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2); u.connect((server, 53))
for k in range(1, n + 1):
    name = "n%d.bench.test" % k
    q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    t0 = time.monotonic(); u.send(q)
    try:
        r = u.recv(4096)
    except OSError:
        continue
    t1 = time.monotonic(); dns.append((t1 - t0) * 1000)
    i = 12
    for _ in range(struct.unpack(">H", r[4:6])[0]): i = skip(r, i) + 4
    addr = None
    for _ in range(struct.unpack(">H", r[6:8])[0]):
        i = skip(r, i); t, c, ttl, rl = struct.unpack(">HHIH", r[i:i + 10]); i += 10
        if t == 1 and rl == 4 and addr is None: addr = socket.inet_ntoa(r[i:i + 4])
        i += rl
    if addr is None: continue
    s = socket.socket(); s.settimeout(0.9)
    try:
        s.connect((addr, port)); lat.append((time.monotonic() - t1) * 1000); ok += 1
    except OSError:
        pass
    s.close()
def pick(v, f):
    v = sorted(v)
    return "%.2f" % v[min(len(v) - 1, int(f * len(v)))] if v else "-"
print(ok, n, pick(dns, 0.5), pick(lat, 0.5), pick(lat, 0.99))
'

# A bed: $P-$1-dev (the device, eth0 to up), $P-$1-up (the upstream host: iperf3 on
# 192.0.2.1, TCP acceptors on 80 and 5202 of every address, a resolver answering
# n1..nN.bench.test with fresh addresses of 100.64.0.0/16), $P-$1-eco (the ECO).
bed() {
  local t=$1
  for n in dev up eco; do
    ip netns add "$P-$t-$n"
    ip -n "$P-$t-$n" link set lo up
    # No IPv6: its link-local claims and DAD would change econet's sets as we count.
    ip netns exec "$P-$t-$n" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6'
  done
  ip -n "$P-$t-dev" link add eth0 type veth peer name eth0 netns "$P-$t-up"
  ip -n "$P-$t-dev" addr add 192.0.2.2/24 dev eth0
  ip -n "$P-$t-dev" link set eth0 up
  ip -n "$P-$t-up" addr add 192.0.2.1/24 dev eth0
  ip -n "$P-$t-up" link set eth0 up
  ip -n "$P-$t-dev" route add default via 192.0.2.1
  ip -n "$P-$t-up" route add local 100.64.0.0/16 dev lo
  ip netns exec "$P-$t-up" iperf3 -s -B 192.0.2.1 >/dev/null 2>&1 &
  ip netns exec "$P-$t-up" python3 -c "$ACCEPTOR" >/dev/null 2>&1 &
  for i in $(seq 1 "$NAMES"); do
    echo "100.64.$((i / 250)).$((i % 250 + 1)) n$i.bench.test"
  done > "$TMP/$t-hosts"
  ip netns exec "$P-$t-up" dnsmasq --no-daemon --no-resolv --no-hosts --addn-hosts="$TMP/$t-hosts" \
    --local-ttl=300 --listen-address=192.0.2.1 --bind-interfaces --port=53 \
    --pid-file="$TMP/$t-up-dnsmasq.pid" >/dev/null 2>&1 &
  sleep 0.3
}

eco_addr() { # $1: bed tag: the tested ECO's static address and route
  ip -n "$P-$1-eco" addr add 10.9.100.10/16 dev eth0
  ip -n "$P-$1-eco" link set eth0 up
  ip -n "$P-$1-eco" route add default via 10.9.0.1
}

# Filler endpoint k (0..254): a static address of 10.9.0.0/16.
ip_of() { echo "10.9.$(($1 / 200 + 1)).$(($1 % 200 + 10))"; }
TESTED=$((EPS - 1))

# The 16 ACEs, as JSON; variant 1 moves ACE 1-14's ports by one (a changed ACL).
aces_json() {
  local v=$1 out="" j
  for j in $(seq 1 14); do
    out+="{\"id\":$j,\"matches\":[{\"type\":\"ip\",\"value\":\"198.51.100.$j/32\"},{\"type\":\"protocol\",\"value\":\"tcp\"},{\"type\":\"fport\",\"value\":\"$((1000 + j + v))\"}]},"
  done
  out+='{"id":15,"matches":[{"type":"ip","value":"192.0.2.1/32"},{"type":"protocol","value":"tcp"},{"type":"fport","value":"5201"}]},'
  out+='{"id":16,"matches":[{"type":"ip","value":"192.0.2.1/32"},{"type":"protocol","value":"udp"},{"type":"fport","value":"5201"}]}'
  echo "[$out]"
}
ACL0=$(aces_json 0)
ACL1=$(aces_json 1)
HOST_ACL='[{"id":1,"matches":[{"type":"host","value":"bench.test"}]}]'
CHANGED=77 # the endpoint whose ACL changes

# The probe: is the ECO kept from a port no ACE allows (the acceptor on 5202)?
enforced() { # $1: ECO namespace -> yes/no
  if ip netns exec "$1" python3 -c "$PROBE" 192.0.2.1 5202 0.5; then echo no; else echo yes; fi
}

# Under the host ACE: is an address no answer gave (an acceptor listens there) refused?
unresolved_blocked() { # $1: ECO namespace -> yes/no
  if ip netns exec "$1" python3 -c "$PROBE" 100.64.255.250 80 0.5; then echo no; else echo yes; fi
}

# Forwarding rate: iperf3 sends 64-byte datagrams as fast as it can from the ECO
# (pinned to one CPU, which also does the forwarding: the packet crosses veth, bridge,
# router and filter in the sender's softirq), and the upstream host counts them in
# the kernel as they arrive and drops them there (its UDP socket would be the
# bottleneck otherwise). kpps for one run of SECS seconds.
counter() { # $1: bed tag
  ip netns exec "$P-$1-up" nft -f - <<EOF
table ip ectcount {
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    udp dport 5201 udp length 72 counter drop
  }
}
EOF
}
count() { # $1: bed tag -> datagrams counted so far
  ip netns exec "$P-$1-up" nft list chain ip ectcount pre | sed -n 's/.*packets \([0-9]*\) .*/\1/p'
}
kpps_once() { # $1: bed tag
  local n0 n1
  n0=$(count "$1")
  ip netns exec "$P-$1-eco" taskset -c 1 iperf3 -c 192.0.2.1 -u -b 0 -l 64 -t "$SECS" >/dev/null 2>&1 || true
  n1=$(count "$1")
  awk -v n="$((n1 - n0))" -v s="$SECS" 'BEGIN { printf "%.1f", n / s / 1000 }'
}

# ============================== econet
E_LATE=0 E_COLD0=- E_APPLY=- E_PASS=- E_ONE=- E_ONE_PASS=- E_COLD1=- E_ENF=- E_LINES0=- E_LINES1=-
E_F0=- E_F256=- E_F4096=- E_LEARN="- - - - -" E_LENF=-
if [ "$MODE" != incumbent ]; then
  bed e
  D="$P-e-dev"
  CFG="$TMP/e-config.json"
  STATE="$TMP/e-state"
  econet_config() { # $1 version, $2 endpoints with ACLs (the last ones), $3 endpoint with the variant ACL, $4 the tested endpoint's acls instead
    local ver=$1 with=$2 changed=$3 tested=${4:-} k acl attach ip
    {
      echo "{\"device_id\":\"bench\",\"config_version\":\"$ver\",\"ports\":[{\"name\":\"eth0\",\"ifname\":\"eth0\"}],"
      echo '"networks":[{"id":"lan","name":"lan","type":"local","port":"eth0","ip":{"subnet":"10.9.0.0/16","dhcp_range":{"start":"10.9.200.10","end":"10.9.200.250"},"dns":["192.0.2.1"]}}],'
      echo '"apps":['
      for k in $(seq 0 $((EPS - 1))); do
        acl=""
        if [ "$k" -ge $((EPS - with)) ]; then
          if [ "$k" -eq "$changed" ]; then acl=",\"acls\":$ACL1"; else acl=",\"acls\":$ACL0"; fi
        fi
        if [ "$k" -eq "$TESTED" ]; then
          [ -n "$tested" ] && acl=",\"acls\":$tested"
          attach="{\"netns\":\"/run/netns/$P-e-eco\"}"
          ip=10.9.100.10
        else
          attach="{\"tap\":\"vf$k\"}"
          ip=$(ip_of "$k")
        fi
        [ "$k" -gt 0 ] && echo ','
        echo "{\"id\":\"app$k\",\"name\":\"a$k\",\"interfaces\":[{\"name\":\"eth0\",\"network\":\"lan\",\"ip\":\"$ip\",\"attach\":$attach$acl}]}"
      done
      echo ']}'
    } > "$CFG.new"
    "$BIN" check "$CFG.new" >/dev/null
    mv "$CFG.new" "$CFG"
  }
  status() { "$BIN" status --json --state-dir "$STATE" 2>/dev/null || true; }
  applied() { # $1: version
    local s
    s=$(status)
    [[ $s == *"\"config_version\":\"$1\""* && $s == *'"applied":true'* ]]
  }
  wait_applied() { # $1: version; polls without sleeping, for at most 60 s
    local end=$((SECONDS + 60))
    until applied "$1"; do
      [ "$SECONDS" -lt "$end" ] || { echo "econet did not apply version $1 within 60 s" >&2; exit 1; }
    done
  }
  last_apply() { status | sed -n 's/.*"last_apply_ms":\([0-9]*\).*/\1/p'; }
  start_econet() {
    ip netns exec "$D" "$BIN" run --config "$CFG" --state-dir "$STATE" --log-level ${ECONET_LOG:-warn} &
    ECONET_PID=$!
  }
  reload() { # $1: version -> ms from SIGHUP to applied
    local t0
    t0=$(now)
    kill -HUP "$ECONET_PID"
    wait_applied "$1"
    ms_since "$t0"
  }
  wait_eco() {
    for _ in $(seq 1 100); do ip -n "$P-e-eco" link show eth0 >/dev/null 2>&1 && return; sleep 0.1; done
    echo "the ECO was not plumbed" >&2; exit 1
  }
  lines() { ip netns exec "$D" nft -s list ruleset | wc -l; }

  # Cold start: 256 endpoints, no ACLs.
  econet_config 1 0 -1
  t0=$(now); start_econet; wait_applied 1; E_COLD0=$(ms_since "$t0")
  wait_eco; eco_addr e
  E_LINES0=$(lines)
  # The 4,096 ACEs, by reload.
  econet_config 2 "$EPS" -1
  E_APPLY=$(reload 2); E_PASS=$(last_apply)
  E_LINES1=$(lines)
  # Status is the signal; the ruleset must not still be growing a second later.
  sleep 1
  E_LATE=$(( $(lines) - E_LINES1 ))
  E_ENF=$(enforced "$P-e-eco")
  # One endpoint's ACL changed, five times (to the variant and back).
  ones=() passes=()
  for v in 3 4 5 6 7; do
    if [ $((v % 2)) -eq 1 ]; then econet_config "$v" "$EPS" "$CHANGED"; else econet_config "$v" "$EPS" -1; fi
    ones+=("$(reload "$v")"); passes+=("$(last_apply)")
  done
  E_ONE=$(printf '%s\n' "${ones[@]}" | median)
  E_ONE_PASS=$(printf '%s\n' "${passes[@]}" | median)
  # Cold start with the ACLs: econet's links, tables and state gone first.
  kill "$ECONET_PID"; wait "$ECONET_PID" 2>/dev/null || true; ECONET_PID=""
  ip netns exec "$D" nft list tables | grep econet | while read -r t; do ip netns exec "$D" nft delete $t; done
  ip -n "$D" -o link show | awk -F': ' '{ print $2 }' | cut -d@ -f1 | grep -vx -e lo -e eth0 |
    while read -r l; do ip -n "$D" link del "$l" 2>/dev/null || true; done
  rm -rf "$STATE"
  econet_config 8 "$EPS" -1
  t0=$(now); start_econet; wait_applied 8; E_COLD1=$(ms_since "$t0")
  wait_eco; eco_addr e
  # Forwarding with 0, 256 and 4,096 ACEs, the three interleaved in each round.
  counter e
  f0=() f256=() f4096=() ver=100
  for _ in $(seq 1 "$REPS"); do
    for w in 0 16 "$EPS"; do
      ver=$((ver + 1)); econet_config "$ver" "$w" -1; reload "$ver" >/dev/null
      k=$(kpps_once e)
      case $w in 0) f0+=("$k") ;; 16) f256+=("$k") ;; *) f4096+=("$k") ;; esac
    done
  done
  E_F0=$(printf '%s\n' "${f0[@]}" | median)
  E_F256=$(printf '%s\n' "${f256[@]}" | median)
  E_F4096=$(printf '%s\n' "${f4096[@]}" | median)
  # Learned host addresses.
  econet_config 200 0 -1 "$HOST_ACL"; reload 200 >/dev/null
  E_LEARN=$(ip netns exec "$P-e-eco" python3 -c "$LEARN" 10.9.0.1 "$NAMES" 80)
  E_LENF=$(unresolved_blocked "$P-e-eco")
  kill "$ECONET_PID"; wait "$ECONET_PID" 2>/dev/null || true; ECONET_PID=""
fi

# ============================== incumbent
I_APPLY=- I_ONE=- I_RULES=- I_F0=- I_F256=- I_F4096=- I_C256=- I_C4096=- I_ENF=- I_LEARN="- - - - -" I_LENF=-
if [ "$MODE" != econet ]; then
  bed i
  D="$P-i-dev"
  ipt() { ip netns exec "$D" "$IPTB" "$@"; }
  ip -n "$D" link add br0 type bridge
  ip -n "$D" addr add 10.9.0.1/16 dev br0
  ip -n "$D" link set br0 up
  ip -n "$D" link add vt0 type veth peer name eth0 netns "$P-i-eco"
  ip -n "$D" link set vt0 master br0 up
  eco_addr i
  ip netns exec "$D" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  ipt -t nat -A POSTROUTING -s 10.9.0.0/16 -o eth0 -j MASQUERADE

  chain_rules() { # $1 endpoint, $2 variant: its two chains' rules
    local k=$1 v=$2 j a
    if [ "$k" -eq "$TESTED" ]; then a=10.9.100.10; else a=$(ip_of "$k"); fi
    for j in $(seq 1 14); do
      echo "-A ep$k-out -d 198.51.100.$j/32 -p tcp -m tcp --dport $((1000 + j + v)) -j ACCEPT"
    done
    echo "-A ep$k-out -d 192.0.2.1/32 -p tcp -m tcp --dport 5201 -j ACCEPT"
    echo "-A ep$k-out -d 192.0.2.1/32 -p udp -m udp --dport 5201 -j ACCEPT"
    echo "-A ep$k-out -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    echo "-A ep$k-out -j DROP"
    for j in $(seq 1 14); do
      echo "-A ep$k-in -s 198.51.100.$j/32 -p tcp -m tcp --sport $((1000 + j + v)) -j ACCEPT"
    done
    echo "-A ep$k-in -s 192.0.2.1/32 -p tcp -m tcp --sport 5201 -j ACCEPT"
    echo "-A ep$k-in -s 192.0.2.1/32 -p udp -m udp --sport 5201 -j ACCEPT"
    echo "-A ep$k-in -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    echo "-A ep$k-in -j DROP"
  }
  ipt_rules() { # $1 endpoints with ACLs (the last ones), $2 perpacket|ctfirst -> a filter table
    local with=$1 k a
    echo '*filter'
    echo ':INPUT ACCEPT [0:0]'
    echo ':FORWARD ACCEPT [0:0]'
    echo ':OUTPUT ACCEPT [0:0]'
    for k in $(seq $((EPS - with)) $((EPS - 1))); do echo ":ep$k-out - [0:0]"; echo ":ep$k-in - [0:0]"; done
    [ "$2" = ctfirst ] && echo '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'
    for k in $(seq $((EPS - with)) $((EPS - 1))); do
      if [ "$k" -eq "$TESTED" ]; then a=10.9.100.10; else a=$(ip_of "$k"); fi
      echo "-A FORWARD -s $a/32 -j ep$k-out"
      echo "-A FORWARD -d $a/32 -j ep$k-in"
    done
    for k in $(seq $((EPS - with)) $((EPS - 1))); do chain_rules "$k" 0; done
    echo 'COMMIT'
  }
  one_rules() { # $1 variant: endpoint CHANGED's chains replaced
    echo '*filter'
    echo ":ep$CHANGED-out - [0:0]"
    echo ":ep$CHANGED-in - [0:0]"
    chain_rules "$CHANGED" "$1"
    echo 'COMMIT'
  }
  empty_filter() { printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n'; }
  restore() { ip netns exec "$D" "$IPTR" "$@"; }

  ipt_rules "$EPS" perpacket > "$TMP/full.rules"
  ipt_rules 16 perpacket > "$TMP/256.rules"
  ipt_rules "$EPS" ctfirst > "$TMP/full-ct.rules"
  ipt_rules 16 ctfirst > "$TMP/256-ct.rules"
  one_rules 1 > "$TMP/one1.rules"
  one_rules 0 > "$TMP/one0.rules"
  empty_filter > "$TMP/empty.rules"

  # Apply from cold, five times.
  applies=()
  for _ in 1 2 3 4 5; do
    restore < "$TMP/empty.rules"; ipt -X
    t0=$(now); restore < "$TMP/full.rules"; applies+=("$(ms_since "$t0")")
  done
  I_APPLY=$(printf '%s\n' "${applies[@]}" | median)
  I_RULES=$(ipt -S | grep -c '^-A' || true)
  I_ENF=$(enforced "$P-i-eco")
  # One endpoint's chains replaced, five times (to the variant and back).
  ones=()
  for v in 1 0 1 0 1; do
    t0=$(now); restore --noflush < "$TMP/one$v.rules"; ones+=("$(ms_since "$t0")")
  done
  I_ONE=$(printf '%s\n' "${ones[@]}" | median)
  n=$(ipt -S "ep$CHANGED-out" | grep -c '^-A' || true)
  [ "$n" -eq 18 ] || { echo "incumbent: ep$CHANGED-out has $n rules after --noflush, not 18" >&2; exit 1; }
  # Forwarding, the five rulesets interleaved in each round.
  counter i
  declare -A fw=()
  for _ in $(seq 1 "$REPS"); do
    for rs in empty 256 full 256-ct full-ct; do
      restore < "$TMP/$rs.rules"; ipt -X 2>/dev/null || true
      fw[$rs]+="$(kpps_once i) "
    done
  done
  fmed() { printf '%s\n' ${fw[$1]} | median; }
  I_F0=$(fmed empty) I_F256=$(fmed 256) I_F4096=$(fmed full) I_C256=$(fmed 256-ct) I_C4096=$(fmed full-ct)
  # Learned host addresses: dnsmasq on the bridge, --ipset, and the ECO's chains.
  restore < "$TMP/empty.rules"; ipt -X
  ip netns exec "$D" ipset create acl_hosts hash:ip
  ip netns exec "$D" dnsmasq --no-daemon --no-resolv --no-hosts --server=192.0.2.1 \
    --listen-address=10.9.0.1 --bind-interfaces --port=53 --ipset=/bench.test/acl_hosts \
    --pid-file="$TMP/i-dev-dnsmasq.pid" >/dev/null 2>&1 &
  sleep 0.3
  restore <<EOF
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:eco-out - [0:0]
:eco-in - [0:0]
-A FORWARD -s 10.9.100.10/32 -j eco-out
-A FORWARD -d 10.9.100.10/32 -j eco-in
-A eco-out -m set --match-set acl_hosts dst -j ACCEPT
-A eco-out -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A eco-out -j DROP
-A eco-in -m set --match-set acl_hosts src -j ACCEPT
-A eco-in -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A eco-in -j DROP
COMMIT
EOF
  I_LEARN=$(ip netns exec "$P-i-eco" python3 -c "$LEARN" 10.9.0.1 "$NAMES" 80)
  I_LENF=$(unresolved_blocked "$P-i-eco")
fi

# ============================== report
faster() { # $1 incumbent, $2 econet
  local r
  r=$(ratio "$1" "$2")
  [ "$r" = - ] || echo "(incumbent / econet: ${r}x)"
}
learn_row() { # $1 label, $2: "ok n dns lat p99", $3: unresolved address refused
  set -- "$1" $2 "$3"
  printf "  %-30s %5s of %-5s %9s %13s %8s %10s\n" "$1" "$2" "$3" "$4" "$5" "$6" "$7"
}
echo
echo "ACLs: one local network, $EPS endpoints x 16 ACEs = 4,096 (the tested ECO last in every list)"
[ "$MODE" != incumbent ] && echo "  econet: $BIN"
[ "$MODE" != econet ] && echo "  incumbent: $($IPTB -V) via $IPTR, EVE's shape (FORWARD -s/-d dispatch, a chain per endpoint and direction)"
echo "apply (median of 5 where repeated)                econet    incumbent"
printf "  %-44s %8s ms %8s ms  %s\n" "4,096 ACEs from cold (reload / restore)" "$E_APPLY" "$I_APPLY" "$(faster "$I_APPLY" "$E_APPLY")"
printf "  %-44s %8s ms\n" "  econet's last_apply_ms (last changing pass)" "$E_PASS"
printf "  %-44s %8s ms %8s ms  %s\n" "one endpoint's ACL changed" "$E_ONE" "$I_ONE" "$(faster "$I_ONE" "$E_ONE")"
printf "  %-44s %8s ms\n" "  econet's last_apply_ms (last changing pass)" "$E_ONE_PASS"
printf "  %-44s %8s ms\n" "econet cold start, 256 endpoints, no ACLs" "$E_COLD0"
printf "  %-44s %8s ms\n" "econet cold start, 256 endpoints, 4,096 ACEs" "$E_COLD1"
printf "  %-44s %8s    %8s\n" "enforced (a port no ACE allows is refused)" "$E_ENF" "$I_ENF"
printf "  %-44s %8s -> %s nft lines; incumbent %s iptables rules\n" "kernel rules: econet without -> with ACLs" "$E_LINES0" "$E_LINES1" "$I_RULES"
[ "$E_LATE" -eq 0 ] || echo "  WARNING: econet's ruleset changed by $E_LATE lines in the second after status said applied: the apply figure is low"
echo "forwarding: iperf3 UDP -l 64 flat out from the ECO (one CPU), kpps arriving upstream (median of $REPS rounds of $SECS s)"
echo "                                          0 ACEs   256 ACEs  4,096 ACEs   4,096 vs 0"
printf "  %-36s %9s %10s %11s %10s%%\n" "econet" "$E_F0" "$E_F256" "$E_F4096" "$(pct "$E_F4096" "$E_F0")"
printf "  %-36s %9s %10s %11s %10s%%\n" "iptables, every packet walks" "$I_F0" "$I_F256" "$I_F4096" "$(pct "$I_F4096" "$I_F0")"
printf "  %-36s %9s %10s %11s %10s%%\n" "iptables, established accepted first" "$I_F0" "$I_C256" "$I_C4096" "$(pct "$I_C4096" "$I_F0")"
printf "  %-36s %9s %10s %11s\n" "econet / iptables (every packet walks)" "$(ratio "$E_F0" "$I_F0")x" "$(ratio "$E_F256" "$I_F256")x" "$(ratio "$E_F4096" "$I_F4096")x"
echo "learned host addresses: $NAMES fresh names, each looked up and connected to at once (0.9 s, no SYN retry)"
echo "                                 first connects    DNS ms  answer->conn ms   p99   unresolved refused"
learn_row "econet (host ACE)" "$E_LEARN" "$E_LENF"
learn_row "dnsmasq --ipset + iptables" "$I_LEARN" "$I_LENF"
if [ "$MODE" != incumbent ]; then
  goal() { # $1 label, $2 value, $3 unit, $4 awk condition on v
    local ok
    ok=$(awk -v v="$2" "BEGIN { print ((v != \"-\" && $4) ? \"met\" : \"missed\") }")
    [ "$E_ENF" = yes ] || ok="no verdict: this econet does not enforce the ACLs"
    printf "  %-44s %8s %-3s %s\n" "$1" "$2" "$3" "$ok"
  }
  echo "goals"
  goal "applying 4,096 ACEs < 100 ms" "$E_APPLY" ms "v < 100"
  goal "one endpoint's change < 10 ms" "$E_ONE" ms "v < 10"
  goal "forwarding with 4,096 ACEs >= 90% of none" "$(pct "$E_F4096" "$E_F0")" "%" "v >= 90"
fi
