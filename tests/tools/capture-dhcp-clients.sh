#!/bin/sh
# Captures real DHCP client packets (busybox udhcpc, dhclient, dhcpcd) for the wire and
# dhcp tests: two namespaces joined by a veth, dnsmasq serving in one, tcpdump -w there,
# each client in the other. Run as root; writes OUT/<client>.pcap. Namespaces are unique
# per run and always deleted.
set -eu
OUT=${1:-/tmp/ecdhcp-capture}
mkdir -p "$OUT"
S=ecdhcp-$$-s
C=ecdhcp-$$-c
W=$(mktemp -d)
cleanup() {
    for p in "$W"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
    ip netns del "$S" 2>/dev/null || true
    ip netns del "$C" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT INT TERM

ip netns add "$S"
ip netns add "$C"
ip -n "$S" link add eth0 type veth peer name eth0 netns "$C"
ip -n "$S" addr add 10.9.0.1/24 dev eth0
# An address the server namespace answers ARP probes for (on lo, so dnsmasq does not treat
# it as its own interface address): handed to udhcpc -a to provoke a DECLINE.
ip -n "$S" addr add 10.9.0.77/32 dev lo
ip -n "$S" link set eth0 up
ip -n "$S" link set lo up
ip -n "$C" link set eth0 up
ip -n "$C" link set lo up
CMAC=$(ip -n "$C" -br link show eth0 | awk '{print $3}')

cat >"$W/hook" <<'HOOK'
#!/bin/sh
# Applies the address so that unicast renewals have a source address.
case "${1:-}${reason:-}" in
bound|renew|BOUND|RENEW|REBOOT|REBIND)
    a=${ip:-${new_ip_address:-}}
    [ -n "$a" ] && ip addr replace "$a/24" dev eth0 ;;
deconfig|RELEASE|EXPIRE|STOP|NOCARRIER)
    ip addr flush dev eth0 ;;
esac
exit 0
HOOK
chmod +x "$W/hook"

serve() { # name, extra dnsmasq args...
    name=$1; shift
    ip netns exec "$S" dnsmasq --no-daemon --port=0 --bind-interfaces --interface=eth0 \
        --dhcp-range=10.9.0.10,10.9.0.50,2m --dhcp-leasefile="$W/leases" \
        --dhcp-authoritative --no-ping --domain=eco.internal \
        --dhcp-option=42,10.9.0.1 --dhcp-option=26,1400 \
        --dhcp-option=121,192.168.5.0/24,10.9.0.1,0.0.0.0/0,10.9.0.1 \
        --pid-file="$W/dnsmasq.pidf" "$@" >"$W/dnsmasq-$name.log" 2>&1 &
    echo $! >"$W/dnsmasq.pid"
    ip netns exec "$S" tcpdump -i eth0 -U -w "$OUT/$name.pcap" udp port 67 or udp port 68 or arp \
        >/dev/null 2>&1 &
    echo $! >"$W/tcpdump.pid"
    sleep 1
}
stop() {
    sleep 1
    kill "$(cat "$W/tcpdump.pid")" "$(cat "$W/dnsmasq.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -f "$W/tcpdump.pid" "$W/dnsmasq.pid" "$W/leases"
    ip -n "$C" addr flush dev eth0
}

# udhcpc: DISCOVER, REQUEST (selecting), REQUEST (renewing, SIGUSR1), RELEASE (SIGUSR2).
serve udhcpc
ip netns exec "$C" busybox udhcpc -f -i eth0 -s "$W/hook" -t 5 -T 3 -x hostname:web \
    -p "$W/udhcpc.pid" >"$W/udhcpc.log" 2>&1 &
sleep 4
kill -USR1 "$(cat "$W/udhcpc.pid")"; sleep 2
kill -USR2 "$(cat "$W/udhcpc.pid")"; sleep 2
kill "$(cat "$W/udhcpc.pid")" || true
stop

# udhcpc -a with an address someone else holds: DECLINE.
serve udhcpc-decline --dhcp-host="$CMAC,10.9.0.77"
ip netns exec "$C" timeout 8 busybox udhcpc -f -q -n -a -i eth0 -s "$W/hook" -t 2 -T 2 \
    -x hostname:web >"$W/udhcpc-decline.log" 2>&1 || true
stop

# dhclient: DISCOVER, REQUEST; killed without release, then INIT-REBOOT from its lease
# file; then RELEASE (-r).
serve dhclient
DHC="dhclient -4 -v -sf $W/hook -pf $W/dhclient.pidf -lf $W/dhclient.leases"
ip netns exec "$C" unshare --uts sh -c "hostname plc; $DHC -1 eth0" >"$W/dhclient.log" 2>&1
sleep 1
ip netns exec "$C" sh -c "kill \$(cat $W/dhclient.pidf)" || true
sleep 1
ip netns exec "$C" unshare --uts sh -c "hostname plc; $DHC -1 eth0" >>"$W/dhclient.log" 2>&1
sleep 1
ip netns exec "$C" unshare --uts sh -c "hostname plc; $DHC -r eth0" >>"$W/dhclient.log" 2>&1 || true
stop

# dhcpcd: DISCOVER (rapid commit), REQUEST, renew (-N), exit; INIT-REBOOT from its lease
# file, RELEASE (-k); then an INFORM for a manually set address (-s).
serve dhcpcd
ip netns exec "$C" sh -c "
    mount -t tmpfs none /run; mkdir -p /var/lib/dhcpcd; mount -t tmpfs none /var/lib/dhcpcd
    D='dhcpcd -4 -B -t 30 --nodelay --noarp -h db -c $W/hook'
    \$D eth0 >$W/dhcpcd.log 2>&1 &
    sleep 3; dhcpcd -4 -N eth0; sleep 2; dhcpcd -4 -x eth0; sleep 2
    \$D eth0 >>$W/dhcpcd.log 2>&1 &
    sleep 3; dhcpcd -4 -k eth0; sleep 2; dhcpcd -4 -x eth0; sleep 2
    ip addr flush dev eth0
    ip addr add 10.9.0.60/24 dev eth0
    \$D --inform=10.9.0.60/24 eth0 >>$W/dhcpcd.log 2>&1 &
    sleep 6; dhcpcd -4 -x eth0; sleep 1
" || true
stop
cat "$W"/*.log >"$OUT/logs.txt" 2>/dev/null || true
echo "captured into $OUT"
