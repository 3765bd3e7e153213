#!/usr/bin/env bash
# tests/bench/footprint.sh [--sizes-only]
#
# The footprint report of issue 3:
#  1. for each board target, the size of target/TARGET/release/econet (bytes and MiB),
#     against the flash budget (aarch64 < 3 MiB with every network type built in);
#  2. for x86_64, the peak RSS (VmHWM) of `econet run --config FILE --state-dir DIR` in a
#     scenario of 16 networks of all four types and 64 ECOs (4 per network, each a
#     container namespace attached with attach.netns), with the VPN established to a
#     peer and carrying traffic and the mesh registered, against the budget (< 8 MiB).
#
# Build the binaries first (board/build.sh TARGET). Part 2 needs root (network
# namespaces) and an econet that has `run`; it fails, saying why, rather than print a
# number it did not measure. Every namespace it makes has a unique name and is removed
# on exit. Exit status: 0 all measured and within budget, 1 otherwise.
#
# Environment: ECONET_BIN (binary for part 2; default the x86_64 musl release build),
# FOOTPRINT_TIMEOUT (seconds to wait for the config to be applied; default 60).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)
size_budget_target=aarch64-unknown-linux-musl
size_budget=$((3 * 1024 * 1024))
rss_budget_kib=$((8 * 1024))
networks=16
ecos_per_network=4
timeout=${FOOTPRINT_TIMEOUT:-60}

status=0
fail() {
    echo "FAIL: $*" >&2
    status=1
}

mib() {
    awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'
}

echo "== binary size (release profile, stripped)"
for t in "${targets[@]}"; do
    bin=$target_dir/$t/release/econet
    if [[ ! -f $bin ]]; then
        fail "$t: $bin not built (board/build.sh $t)"
        continue
    fi
    bytes=$(stat -c %s "$bin")
    line=$(printf '%-32s %9d bytes  %6s MiB' "$t" "$bytes" "$(mib "$bytes")")
    if [[ $t == "$size_budget_target" ]]; then
        if ((bytes < size_budget)); then
            line+="  (budget 3 MiB: ok)"
        else
            line+="  (budget 3 MiB: OVER)"
            fail "$t binary is $bytes bytes, over the 3 MiB budget"
        fi
    fi
    echo "$line"
done

if [[ ${1:-} == --sizes-only ]]; then
    exit "$status"
fi

echo "== peak RSS of econet run: $networks networks of all four types, $((networks * ecos_per_network)) ECOs, VPN and mesh up (x86_64)"
bin=${ECONET_BIN:-$target_dir/x86_64-unknown-linux-musl/release/econet}
if [[ ! -x $bin ]]; then
    fail "no econet binary at $bin (board/build.sh x86_64-unknown-linux-musl)"
    exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
    fail "the RSS scenario needs root (network namespaces)"
    exit 1
fi
command -v ip >/dev/null || {
    fail "ip (iproute2) not found"
    exit 1
}

tag=ecfp$$
dev_ns=$tag-dev
peer_ns=$tag-peer
work=$(mktemp -d "${TMPDIR:-/tmp}/econet-footprint.XXXXXX")
created_ns=()
econet_pid=
peer_pids=()

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
    local ns p
    if [[ -n $econet_pid ]] && kill -0 "$econet_pid" 2>/dev/null; then
        kill -KILL "$econet_pid" 2>/dev/null || true
        wait "$econet_pid" 2>/dev/null || true
    fi
    for p in "${peer_pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    # The device namespace goes first: with it go econet's bridges and veths.
    for ns in "${created_ns[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
        ip netns delete "$ns" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

add_ns() {
    ip netns add "$1"
    created_ns+=("$1")
    ip -n "$1" link set lo up
}

# The scenario: 16 networks with 4 ECOs on each (every ECO its own namespace with the
# interface eth0). The device has one port, eth0, cabled to a peer (192.0.2.0/24):
#   n00..n09  switch (fp00..fp09)
#   n10..n13  local (10.10.N.0/24; n10 NATs out of eth0, the others are air-gapped)
#   n14       cloud: an IKEv2/ESP tunnel to the peer (another econet, as responder)
#   n15       mesh: registered with `econet map-server` on the peer
# Once the tunnel is up and the mesh registered, traffic crosses the tunnel, so the
# data path's buffers count too.
add_ns "$dev_ns"
add_ns "$peer_ns"
ip -n "$dev_ns" link add eth0 type veth peer name eth0 netns "$peer_ns"
ip -n "$dev_ns" addr add 192.0.2.1/24 dev eth0
ip -n "$peer_ns" addr add 192.0.2.2/24 dev eth0
ip -n "$dev_ns" link set eth0 up
ip -n "$peer_ns" link set eth0 up
psk="footprint shared secret"
eco() { # network index, eco index, extra JSON members for the interface
    printf '    {"id": "a%02d%d", "name": "eco%02d%d", "interfaces": [{"name": "eth0", "network": "n%02d", %s"attach": {"netns": "/run/netns/%s"}}]}' \
        "$1" "$2" "$1" "$2" "$1" "$3" "$tag-n${1}e$2"
}
{
    printf '{\n  "device_id": "footprint-%s", "config_version": "1",\n' "$tag"
    printf '  "ports": [{"name": "eth0", "ifname": "eth0"}],\n  "networks": [\n'
    for ((n = 0; n < 10; n++)); do
        printf '    {"id": "n%02d", "name": "fp%02d", "type": "switch"},\n' "$n" "$n"
    done
    for ((n = 10; n < 14; n++)); do
        port=
        ((n == 10)) && port='"port": "eth0", '
        printf '    {"id": "n%02d", "name": "fp%02d", "type": "local", %s"ip": {"subnet": "10.10.%d.0/24"}},\n' \
            "$n" "$n" "$port" "$n"
    done
    printf '    {"id": "n14", "name": "fp14", "type": "cloud", "port": "eth0",\n'
    printf '     "ip": {"subnet": "10.3.0.0/24", "dhcp_range": {"start": "10.3.0.100", "end": "10.3.0.200"}},\n'
    printf '     "vpn": {"remote": "192.0.2.2", "local_id": "device", "remote_id": "peer", "auth": {"psk": "%s"},\n' "$psk"
    printf '             "remote_subnets": ["172.31.0.0/24"]}},\n'
    printf '    {"id": "n15", "name": "fp15", "type": "mesh", "port": "eth0",\n'
    printf '     "ip": {"subnet": "10.200.0.0/16", "dhcp_range": {"start": "10.200.1.10", "end": "10.200.1.100"}},\n'
    printf '     "mesh": {"instance_id": 1000, "map_servers": [{"address": "192.0.2.2", "key": "ms-secret"}], "register_secs": 5}}\n'
    printf '  ],\n  "apps": [\n'
    for ((n = 0; n < networks; n++)); do
        for ((e = 0; e < ecos_per_network; e++)); do
            extra=
            ((n == 14 && e == 0)) && extra='"ip": "10.3.0.5", '
            ((n == 15 && e == 0)) && extra='"ip": "10.200.1.5", '
            eco "$n" "$e" "$extra"
            ((n == networks - 1 && e == ecos_per_network - 1)) || printf ','
            printf '\n'
        done
    done
    printf '  ]\n}\n'
} >"$work/config.json"
eco_ns=()
for ((n = 0; n < networks; n++)); do
    for ((e = 0; e < ecos_per_network; e++)); do
        ns=$tag-n${n}e$e
        add_ns "$ns"
        eco_ns+=("$ns")
    done
done

# The peer: the VPN's responder with a host behind it, and the mesh's map server.
add_ns "$tag-ph"
cat >"$work/peer.json" <<JSON
{"device_id": "footprint-peer", "ports": [{"name": "eth0", "ifname": "eth0"}],
 "networks": [{"id": "vpn", "name": "vpn", "type": "cloud", "port": "eth0",
   "ip": {"subnet": "172.31.0.0/24", "dhcp_range": {"start": "172.31.0.100", "end": "172.31.0.200"}},
   "vpn": {"remote": "192.0.2.1", "local_id": "peer", "remote_id": "device", "auth": {"psk": "$psk"},
           "remote_subnets": ["10.3.0.0/24"], "initiator": false}}],
 "apps": [{"id": "host", "name": "host", "interfaces": [{"name": "eth0", "network": "vpn", "ip": "172.31.0.5",
   "attach": {"netns": "/run/netns/$tag-ph"}}]}]}
JSON
cat >"$work/ms.json" <<JSON
{"listen": "192.0.2.2", "registration_timeout_secs": 30,
 "sites": [{"name": "fleet", "key": "ms-secret", "instance_id": 1000, "eid_prefixes": ["10.200.0.0/16"]}]}
JSON
mkdir -m 0700 "$work/peer-state" "$work/ms-state"
ip netns exec "$peer_ns" "$bin" run --config "$work/peer.json" --state-dir "$work/peer-state" \
    --log-level warn >"$work/peer.log" 2>&1 &
peer_pids+=($!)
ip netns exec "$peer_ns" "$bin" map-server --config "$work/ms.json" --state-dir "$work/ms-state" \
    --log-level warn >"$work/ms.log" 2>&1 &
peer_pids+=($!)

mkdir -m 0700 "$work/state"
# `ip netns exec` execs econet itself, so $! is econet's pid.
ip netns exec "$dev_ns" "$bin" run --config "$work/config.json" --state-dir "$work/state" \
    --log-level warn >"$work/econet.log" 2>&1 &
econet_pid=$!

applied=false
deadline=$((SECONDS + timeout))
while ((SECONDS < deadline)); do
    if ! kill -0 "$econet_pid" 2>/dev/null; then
        rc=0
        wait "$econet_pid" || rc=$?
        econet_pid=
        if grep -q 'unknown command "run"' "$work/econet.log"; then
            fail "$bin has no \`run\` command yet (the daemon has not landed): no RSS to measure"
        else
            fail "econet run exited with status $rc before applying the config; its log:"
            tail -n 20 "$work/econet.log" >&2
        fi
        exit 1
    fi
    doc=$("$bin" status --json --state-dir "$work/state" 2>/dev/null) || doc=
    if grep -Eq '"applied"[[:space:]]*:[[:space:]]*true' <<<"$doc"; then
        applied=true
        break
    fi
    sleep 0.2
done
if [[ $applied != true ]]; then
    fail "econet did not report \"applied\": true within ${timeout}s; its log:"
    tail -n 20 "$work/econet.log" >&2
    exit 1
fi

# The tunnel established and the mesh registered?
up=false
deadline=$((SECONDS + timeout))
while ((SECONDS < deadline)); do
    doc=$("$bin" status --json --state-dir "$work/state" 2>/dev/null) || doc=
    if grep -q '"state": *"established"' <<<"$doc" && grep -q '"registered": *true' <<<"$doc"; then
        up=true
        break
    fi
    sleep 0.2
done
if [[ $up != true ]]; then
    fail "the VPN did not come up or the mesh did not register within ${timeout}s; status:"
    "$bin" status --state-dir "$work/state" >&2 || true
    exit 1
fi
# Traffic through the tunnel, both ways: TCP streams when iperf3 is there, else pings.
ip -n "$tag-n14e0" addr add 10.3.0.5/24 dev eth0
ip -n "$tag-n14e0" route add default via 10.3.0.1
ip -n "$tag-ph" addr add 172.31.0.5/24 dev eth0
ip -n "$tag-ph" route add default via 172.31.0.1
traffic=pings
if ! ip netns exec "$tag-n14e0" ping -c 3 -i 0.2 -W 2 172.31.0.5 >/dev/null; then
    fail "no ping through the tunnel"
elif command -v iperf3 >/dev/null; then
    traffic="iperf3 TCP, 2 s each way"
    for dir in "" -R; do
        ip netns exec "$tag-ph" iperf3 -s -1 -B 172.31.0.5 >/dev/null 2>&1 &
        iperf_pid=$!
        sleep 0.5
        # shellcheck disable=SC2086 # $dir is empty or one flag
        ip netns exec "$tag-n14e0" iperf3 -c 172.31.0.5 -t 2 $dir >/dev/null ||
            fail "iperf3 $dir through the tunnel failed"
        wait "$iperf_pid" 2>/dev/null || true
    done
else
    ip netns exec "$tag-n14e0" ping -c 500 -i 0.002 -s 1300 -W 2 172.31.0.5 >/dev/null ||
        fail "pings through the tunnel were lost"
fi

# Check the scenario is really there: every ECO namespace has its eth0.
attached=0
for ns in "${eco_ns[@]}"; do
    ip -n "$ns" link show eth0 >/dev/null 2>&1 && attached=$((attached + 1))
done
bridges=$(ip -n "$dev_ns" -o link show type bridge | wc -l)
sleep 1
hwm_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$econet_pid/status")
rss_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$econet_pid/status")

kill -TERM "$econet_pid"
stopped=false
for ((i = 0; i < 50; i++)); do
    if ! kill -0 "$econet_pid" 2>/dev/null; then
        stopped=true
        break
    fi
    sleep 0.2
done
if [[ $stopped == true ]]; then
    wait "$econet_pid" 2>/dev/null || true
    econet_pid=
else
    fail "econet did not exit within 10 s of SIGTERM"
fi

echo "scenario: $bridges bridges in the device namespace, $attached/${#eco_ns[@]} ECOs attached, VPN established and mesh registered; traffic: $traffic"
((attached == ${#eco_ns[@]})) || fail "only $attached of ${#eco_ns[@]} ECO namespaces got their eth0"
line=$(printf 'peak RSS (VmHWM) %d KiB = %s MiB, RSS after apply %d KiB' \
    "$hwm_kib" "$(mib $((hwm_kib * 1024)))" "$rss_kib")
if ((hwm_kib < rss_budget_kib)); then
    echo "$line  (budget 8 MiB: ok)"
else
    echo "$line  (budget 8 MiB: OVER)"
    fail "peak RSS ${hwm_kib} KiB is over the 8 MiB budget"
fi
exit "$status"
