#!/usr/bin/env bash
# tests/bench/footprint.sh [--sizes-only]
#
# The footprint report of issue 3:
#  1. for each board target, the size of target/TARGET/release/econet (bytes and MiB),
#     against the flash budget (aarch64 < 3 MiB with every network type built in);
#  2. for x86_64, the peak RSS (VmHWM) of `econet run --config FILE --state-dir DIR` in a
#     scenario of 16 switch networks and 64 ECOs (4 per network, each a container
#     namespace attached with attach.netns), against the budget (< 8 MiB).
#     Later the scenario gains VPN and mesh networks.
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

echo "== peak RSS of econet run: $networks switch networks, $((networks * ecos_per_network)) ECOs (x86_64)"
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
work=$(mktemp -d "${TMPDIR:-/tmp}/econet-footprint.XXXXXX")
created_ns=()
econet_pid=

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
    local ns
    if [[ -n $econet_pid ]] && kill -0 "$econet_pid" 2>/dev/null; then
        kill -KILL "$econet_pid" 2>/dev/null || true
        wait "$econet_pid" 2>/dev/null || true
    fi
    # The device namespace goes first: with it go econet's bridges and veths.
    for ns in "${created_ns[@]}"; do
        ip netns delete "$ns" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

add_ns() {
    ip netns add "$1"
    created_ns+=("$1")
}

# The scenario: networks n00..n15 ("fp00".."fp15", bridges ec-fp00..), 4 ECOs on each,
# every ECO its own namespace with the interface eth0.
add_ns "$dev_ns"
ip -n "$dev_ns" link set lo up
eco_ns=()
{
    printf '{\n  "device_id": "footprint-%s", "config_version": "1",\n  "ports": [],\n' "$tag"
    printf '  "networks": [\n'
    for ((n = 0; n < networks; n++)); do
        sep=,
        ((n == networks - 1)) && sep=
        printf '    {"id": "n%02d", "name": "fp%02d", "type": "switch"}%s\n' "$n" "$n" "$sep"
    done
    printf '  ],\n  "apps": [\n'
    for ((n = 0; n < networks; n++)); do
        for ((e = 0; e < ecos_per_network; e++)); do
            ns=$tag-n${n}e$e
            sep=,
            ((n == networks - 1 && e == ecos_per_network - 1)) && sep=
            printf '    {"id": "a%02d%d", "name": "eco%02d%d", "interfaces": [{"name": "eth0", "network": "n%02d", "attach": {"netns": "/run/netns/%s"}}]}%s\n' \
                "$n" "$e" "$n" "$e" "$n" "$ns" "$sep"
        done
    done
    printf '  ]\n}\n'
} >"$work/config.json"
for ((n = 0; n < networks; n++)); do
    for ((e = 0; e < ecos_per_network; e++)); do
        ns=$tag-n${n}e$e
        add_ns "$ns"
        eco_ns+=("$ns")
    done
done

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

echo "scenario: $bridges bridges in the device namespace, $attached/${#eco_ns[@]} ECOs attached"
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
