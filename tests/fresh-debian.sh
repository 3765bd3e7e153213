#!/usr/bin/env bash
# tests/fresh-debian.sh [demo|suite|both]
#
# Proves the README's two commands on a fresh Debian 12, without trusting this machine's
# installed packages: builds a minimal Debian 12 root with debootstrap, gives it a copy of
# this machine's Rust toolchain reset to rustup's default profile (no extra targets, no
# rust-src), clones the committed HEAD into it, and runs, each in its own clean copy of
# the root:
#   demo:  cargo run --release -- demo
#   suite: tests/run
# (default: both). It prints, per command, its exit code, wall time, the Debian packages
# it installed and the disk it used.
#
# The root starts as `debootstrap --variant=minbase bookworm` plus what a Rust toolchain
# itself needs on Linux (gcc and libc6-dev for its linker, ca-certificates for crates.io),
# which is less than a fresh machine of this kind has (no iproute2, python3, git, file,
# curl). Each command runs chrooted in a private mount namespace (its own /proc, /sys,
# /run; /dev bound in for /dev/net/tun), so the network namespaces the tests make are
# private to it and every mount goes away with it. Daemons that packages would start
# (policy-rc.d) are not started. The root gets the host's resolv.conf and CA bundle (the
# way this machine reaches the package registries). Needs root, about 4 GB of disk under $FRESH_DIR and 25
# minutes on 2 cores for both. Environment: FRESH_DIR (default /var/tmp/econet-fresh),
# FRESH_KEEP=1 keeps the roots for a look afterwards.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
what=${1:-both}
case $what in demo | suite | both) ;; *)
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
[[ $(id -u) -eq 0 ]] || {
    echo "tests/fresh-debian.sh: run as root (debootstrap, chroot, mounts)" >&2
    exit 2
}
base_dir=${FRESH_DIR:-/var/tmp/econet-fresh}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
log() { echo "fresh: $*" >&2; }

if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap (to build the clean root)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
toolchain=$(rustup show active-toolchain | awk '{print $1}')
[[ -d $rustup_home/toolchains/$toolchain ]] || {
    echo "tests/fresh-debian.sh: no toolchain $toolchain under $rustup_home" >&2
    exit 1
}

# Never remove a tree that still has something mounted below it.
safe_rm() {
    local dir=$1
    [[ -e $dir ]] || return 0
    if findmnt -rn -o TARGET | grep -q "^$dir\(/\|$\)"; then
        echo "tests/fresh-debian.sh: $dir still has mounts; not removing it" >&2
        return 1
    fi
    rm -rf --one-file-system "$dir"
}

# Runs CMD (bash) chrooted in ROOT, in a private mount namespace with its own /proc,
# /sys and /run and the host's /dev (for /dev/net/tun): every mount, and every network
# namespace the command pins under /run/netns, goes away when it ends.
enter() {
    local root=$1 cmd=$2
    unshare --mount --propagation private -- bash -c '
        set -e
        r=$1
        mount --bind "$r" "$r"    # "/" a mount point in the chroot, as ip netns wants
        mount --rbind /dev "$r/dev"
        mount --make-rslave "$r/dev"
        mount -t proc proc "$r/proc"
        mount -t sysfs sysfs "$r/sys"
        mount -t tmpfs tmpfs "$r/run"
        exec chroot "$r" /usr/bin/env -i HOME=/root TERM=dumb CI=true LANG=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive \
            PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            bash -c "$2"
    ' fresh "$root" "$cmd" </dev/null
}

# On any exit, no process is left running inside a root (a test's daemon, a build).
reap() {
    local p r
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        [[ $r == "$base_dir"/* ]] && kill -9 "${p#/proc/}" 2>/dev/null
    done
    return 0
}
trap reap EXIT

# The base root, built once and copied per command.
base=$base_dir/base
if [[ ! -f $base/.econet-base-ok ]]; then
    safe_rm "$base"
    mkdir -p "$base_dir"
    t0=$SECONDS
    log "debootstrap --variant=minbase bookworm $base $mirror"
    debootstrap --variant=minbase bookworm "$base" "$mirror" >"$base_dir/debootstrap.log" 2>&1 ||
        { tail -20 "$base_dir/debootstrap.log" >&2; exit 1; }
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        cp /etc/apt/sources.list.d/debian.sources "$base/etc/apt/sources.list.d/"
        rm -f "$base/etc/apt/sources.list"
    fi
    cp -L /etc/resolv.conf "$base/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$base/usr/sbin/policy-rc.d"
    chmod 755 "$base/usr/sbin/policy-rc.d"
    enter "$base" 'apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev ca-certificates && apt-get clean' \
        >"$base_dir/base-apt.log" 2>&1 || { tail -20 "$base_dir/base-apt.log" >&2; exit 1; }
    # This workplace reaches the package registries through a TLS proxy whose CA is in
    # the host's bundle: the root trusts what the host trusts (kept across later
    # update-ca-certificates runs by living in /usr/local/share/ca-certificates).
    cp /etc/ssl/certs/ca-certificates.crt "$base/usr/local/share/ca-certificates/host-bundle.crt"
    enter "$base" 'update-ca-certificates' >>"$base_dir/base-apt.log" 2>&1
    # The Rust toolchain, as rustup installs it: the active toolchain only, default profile.
    mkdir -p "$base/root/.rustup/toolchains" "$base/root/.cargo"
    cp "$rustup_home/settings.toml" "$base/root/.rustup/"
    cp -a "$rustup_home/toolchains/$toolchain" "$base/root/.rustup/toolchains/"
    [[ -d $rustup_home/update-hashes ]] && cp -a "$rustup_home/update-hashes" "$base/root/.rustup/"
    cp -a "$cargo_home/bin" "$base/root/.cargo/"
    sed -i "s/^default_toolchain = .*/default_toolchain = \"$toolchain\"/" "$base/root/.rustup/settings.toml"
    enter "$base" '
        for t in $(rustup target list --installed); do
            [ "$t" = x86_64-unknown-linux-gnu ] || rustup target remove "$t"
        done
        rustup component list --installed | grep -q "^rust-src" && rustup component remove rust-src
        rustup show' >"$base_dir/base-rust.log" 2>&1 || { cat "$base_dir/base-rust.log" >&2; exit 1; }
    touch "$base/.econet-base-ok"
    log "base root ready in $((SECONDS - t0)) s: $(du -sh --one-file-system "$base" | cut -f1)"
fi

head=$(git -C "$repo" rev-parse --short HEAD)
[[ -z $(git -C "$repo" status --porcelain --untracked-files=no) ]] ||
    log "note: uncommitted changes in $repo are not tested (the root gets HEAD $head)"

results=()
run_in_fresh_root() {
    local name=$1 cmd=$2 root=$base_dir/$1
    safe_rm "$root"
    cp -a "$base" "$root"
    git clone -q "$repo" "$root/root/econet"
    dpkg --root="$root" -l | awk '/^ii/{print $2}' | sort >"$base_dir/$name.pkgs-before"
    local used0 t0 rc
    used0=$(du -sk --one-file-system "$root" | cut -f1)
    log "$name: $cmd (in $root, log $base_dir/$name.log)"
    t0=$SECONDS
    set +e
    enter "$root" "cd /root/econet && $cmd" >"$base_dir/$name.log" 2>&1
    rc=$?
    set -e
    local secs=$((SECONDS - t0))
    dpkg --root="$root" -l | awk '/^ii/{print $2}' | sort >"$base_dir/$name.pkgs-after"
    local added used
    added=$(comm -13 "$base_dir/$name.pkgs-before" "$base_dir/$name.pkgs-after" | wc -l)
    used=$((($(du -sk --one-file-system "$root" | cut -f1) - used0) / 1024))
    local apt_mb target_mb cargo_mb
    apt_mb=$(du -sm --one-file-system "$root/var/cache/apt" | cut -f1)
    target_mb=$(du -sm --one-file-system "$root/root/econet/target" 2>/dev/null | cut -f1)
    cargo_mb=$(du -sm --one-file-system "$root/root/.cargo/registry" 2>/dev/null | cut -f1)
    results+=("$name: exit $rc, $((secs / 60)) min $((secs % 60)) s, $added Debian packages installed, disk +${used} MB (of which target/ ${target_mb:-0} MB, crates ${cargo_mb:-0} MB, apt cache ${apt_mb} MB)")
    echo "--- $name: last lines of its log" >&2
    tail -n 15 "$base_dir/$name.log" >&2
    echo "--- $name: packages it installed (top level: what it asked for)" >&2
    grep -h "installing" "$base_dir/$name.log" | sed 's/^/  /' >&2 || true
    [[ ${FRESH_KEEP:-0} == 1 ]] || safe_rm "$root"
    return "$rc"
}

status=0
if [[ $what == demo || $what == both ]]; then
    run_in_fresh_root demo "cargo run --release -- demo" || status=1
fi
if [[ $what == suite || $what == both ]]; then
    run_in_fresh_root suite "tests/run" || status=1
fi
echo
echo "fresh Debian 12 root (minbase + gcc, libc6-dev, ca-certificates + Rust toolchain $toolchain, $(rustc --version)), econet $head:"
for r in "${results[@]}"; do echo "  $r"; done
exit "$status"
