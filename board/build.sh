#!/usr/bin/env bash
# board/build.sh TARGET [build|test]
#
# Builds target/TARGET/release/econet as a fully static musl binary (build, the default),
# or runs the crate's unit tests for TARGET (test), under qemu-user for the ARM targets.
# No docker: Debian's cross gcc, qemu-user-static and rustup. Installs what is missing
# (apt-get, rustup) and nothing else; safe to run again.
#
# TARGET: x86_64-unknown-linux-musl | aarch64-unknown-linux-musl |
#         armv7-unknown-linux-musleabihf (or the short names x86_64, aarch64, armv7).
#
# Environment: CARGO (default cargo), CARGO_TARGET_DIR (default ./target),
# ECONET_ARMV7_SYSROOT (where musl-dev:armhf is unpacked; default
# $CARGO_TARGET_DIR/board-sysroot/armv7-unknown-linux-musleabihf).
set -euo pipefail

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() {
    echo "board/build.sh: $*" >&2
    exit 1
}

log() {
    echo "==> $*" >&2
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

[[ $# -ge 1 && $# -le 2 ]] || usage
target=$1
mode=${2:-build}
case $target in
    x86_64) target=x86_64-unknown-linux-musl ;;
    aarch64) target=aarch64-unknown-linux-musl ;;
    armv7) target=armv7-unknown-linux-musleabihf ;;
esac
case $mode in
    build | test) ;;
    *) usage ;;
esac

cargo=${CARGO:-cargo}
target_dir=${CARGO_TARGET_DIR:-$repo/target}

# Per target: the Debian packages the build needs (checked by package, not by command:
# a cross gcc without its libc headers is a command that runs and a build that fails),
# the qemu runner and the `file` arch words.
packages=(file)
qemu=
arch_re=
case $target in
    x86_64-unknown-linux-musl)
        # gcc links (rustup's self-contained musl crt and libc.a); musl-gcc compiles ring's C.
        packages+=(gcc libc6-dev musl-tools)
        arch_re='x86-64'
        ;;
    aarch64-unknown-linux-musl)
        # ring's C parts include glibc's headers through the cross gcc: libc6-dev-arm64-cross
        # is only a Recommends of gcc-aarch64-linux-gnu, so it is named here.
        packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
        qemu="qemu-aarch64-static"
        arch_re='ARM aarch64'
        ;;
    armv7-unknown-linux-musleabihf)
        # musl's own headers and libc.a come from musl-dev:armhf, unpacked below.
        packages+=(gcc-arm-linux-gnueabihf qemu-user-static dpkg)
        qemu="qemu-arm-static"
        arch_re='ARM, EABI5'
        ;;
    *) die "unknown target $target (x86_64-unknown-linux-musl, aarch64-unknown-linux-musl, armv7-unknown-linux-musleabihf)" ;;
esac

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

ensure_packages() {
    if ! command -v dpkg-query >/dev/null; then
        # Not Debian: the equivalents must be there already; the build says if not.
        log "not a Debian system: not checking for ${packages[*]} (or their equivalents)"
        return 0
    fi
    local missing=() p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing ${missing[*]} (the $target toolchain)"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

ensure_rust() {
    command -v rustup >/dev/null || die "rustup not found (install Rust with rustup first)"
    # (Lists are read into variables first: `rustup ... | grep -q` can die of SIGPIPE.)
    local installed
    if [[ $target == armv7-unknown-linux-musleabihf ]]; then
        # No prebuilt rust-std for this target here: std is built from source.
        installed=$(rustup component list --installed)
        if ! grep -q '^rust-src' <<<"$installed"; then
            log "rustup component add rust-src"
            rustup component add rust-src
        fi
    else
        installed=$(rustup target list --installed)
        if ! grep -qx "$target" <<<"$installed"; then
            log "rustup target add $target"
            rustup target add "$target"
        fi
    fi
}

# musl's headers, crt files and libc.a for armhf, from Debian's musl-dev:armhf, unpacked
# (never installed) into a private sysroot. The package is fetched with a private apt
# state (armhf-only lists under the sysroot dir), so the host's dpkg architectures and
# apt lists are left as they are.
ensure_armv7_sysroot() {
    local sysroot=${ECONET_ARMV7_SYSROOT:-$target_dir/board-sysroot/armv7-unknown-linux-musleabihf}
    export ECONET_ARMV7_SYSROOT=$sysroot
    [[ $sysroot != *[[:space:]#]* ]] || die "the musl sysroot path must not contain spaces or '#': $sysroot"
    [[ -f $sysroot/musl-gcc.specs && -f $sysroot/lib/libc.a && -e $sysroot/lib/libunwind.a ]] && return 0

    log "preparing musl sysroot for armhf in $sysroot"
    local work=$sysroot.work
    rm -rf "$work"
    mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/deb"
    local apt_opts=(-q -o APT::Architecture=armhf -o APT::Architectures::=armhf
        -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
        -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
    # An index that fails to refresh (a mirror syncing) is not fatal: the download below
    # needs only the main suite's index, and apt checks the .deb against it.
    apt-get "${apt_opts[@]}" update >"$work/apt-update.log" 2>&1 ||
        log "apt-get update (armhf, private lists) reported errors; see $work/apt-update.log"
    (cd "$work/deb" && apt-get "${apt_opts[@]}" download musl-dev:armhf) ||
        die "could not download musl-dev:armhf (see $work/apt-update.log)"
    dpkg-deb -x "$work"/deb/musl-dev_*_armhf.deb "$work/root"

    local lib=$work/root/usr/lib/arm-linux-musleabihf inc=$work/root/usr/include/arm-linux-musleabihf
    [[ -f $lib/libc.a && -f $lib/crt1.o && -d $inc ]] || die "musl-dev:armhf has an unexpected layout"
    rm -rf "$sysroot"
    mkdir -p "$sysroot"
    cp -a "$lib" "$sysroot/lib"
    cp -a "$inc" "$sysroot/include"
    cp "$work"/deb/musl-dev_*_armhf.deb "$sysroot/"
    # The musl-gcc specs Debian ships, pointed at this sysroot.
    sed -e "s#/usr/lib/arm-linux-musleabihf#$sysroot/lib#g" \
        -e "s#/usr/include/arm-linux-musleabihf#$sysroot/include#g" \
        "$lib/musl-gcc.specs" >"$sysroot/musl-gcc.specs.tmp"
    # std's `unwind` crate links `-lunwind` on musl; gcc's libgcc_eh implements the same
    # _Unwind_* (ARM EHABI) interface, so name it libunwind.a here.
    local eh
    eh=$(arm-linux-gnueabihf-gcc -print-file-name=libgcc_eh.a)
    [[ -f $eh ]] || die "arm-linux-gnueabihf-gcc has no libgcc_eh.a"
    ln -sf "$eh" "$sysroot/lib/libunwind.a"
    mv "$sysroot/musl-gcc.specs.tmp" "$sysroot/musl-gcc.specs"
    rm -rf "$work"
}

# Cargo arguments for the target. armv7: std from source (RUSTC_BOOTSTRAP=1 lets the
# stable toolchain take -Z flags), and gcc, not rustc, supplies musl's crt files.
cargo_args=(--locked --target "$target")
if [[ $target == armv7-unknown-linux-musleabihf ]]; then
    export RUSTC_BOOTSTRAP=1
    flags=("-C" "link-self-contained=no")
    # RUSTFLAGS would replace, not extend, the target's rustflags (the time_t cfg in
    # .cargo/config.toml and the flag above): fold it into them instead.
    [[ -n ${CARGO_ENCODED_RUSTFLAGS:-} ]] && die "CARGO_ENCODED_RUSTFLAGS is not supported for $target; use RUSTFLAGS"
    if [[ -n ${RUSTFLAGS:-} ]]; then
        read -r -a extra <<<"$RUSTFLAGS"
        flags+=("${extra[@]}")
        unset RUSTFLAGS
    fi
    list=$(printf "'%s', " "${flags[@]}")
    cargo_args+=(--config "target.$target.rustflags=[${list%, }]")
fi

check_static() {
    local bin=$1 desc
    desc=$(file -b "$bin")
    echo "$bin: $desc" >&2
    [[ $desc == *"$arch_re"* ]] || die "$bin is not a $arch_re binary"
    [[ $desc == *"statically linked"* || $desc == *"static-pie linked"* ]] ||
        die "$bin is not statically linked"
    [[ $desc != *interpreter* && $desc != *"dynamically linked"* ]] ||
        die "$bin needs a dynamic loader"
}

run_target() {
    if [[ -n $qemu ]]; then
        "$qemu" "$@"
    else
        "$@"
    fi
}

ensure_packages
ensure_rust
[[ $target == armv7-unknown-linux-musleabihf ]] && ensure_armv7_sysroot

case $mode in
    build)
        build_std=()
        [[ $target == armv7-unknown-linux-musleabihf ]] && build_std=("-Zbuild-std=std,panic_abort")
        log "cargo build --release ${cargo_args[*]} ${build_std[*]}"
        "$cargo" build --release "${cargo_args[@]}" "${build_std[@]}"
        bin=$target_dir/$target/release/econet
        check_static "$bin"
        version=$(run_target "$bin" --version) || die "$bin --version failed${qemu:+ under $qemu}"
        [[ $version == "econet "* ]] || die "unexpected --version output: $version"
        size=$(stat -c %s "$bin")
        echo "$target: $bin ok: '$version'${qemu:+ (under $qemu)}, $size bytes"
        ;;
    test)
        # Unit tests only (the library's #[cfg(test)] modules): no root, no namespaces.
        # Tests build with the test profile (unwinding, as the harness needs).
        build_std=()
        [[ $target == armv7-unknown-linux-musleabihf ]] && build_std=(-Zbuild-std)
        if [[ -n $qemu ]]; then
            # Unoptimized code under qemu-user is slow (a fuzz-style DHCP test took 60+ s
            # on armv7, 1 s at opt-level 1); debug assertions and overflow checks stay on.
            export CARGO_PROFILE_DEV_OPT_LEVEL=${CARGO_PROFILE_DEV_OPT_LEVEL:-1}
            export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-0}
        fi
        log "cargo test --lib ${cargo_args[*]} ${build_std[*]}${qemu:+ (runner $qemu)}"
        "$cargo" test --lib "${cargo_args[@]}" "${build_std[@]}"
        ;;
esac
