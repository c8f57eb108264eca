# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by tools/check and tools/demo (sourced, not run): installs the Debian packages that
# building, running and testing dpipe need, when they are missing. Idempotent, and quick when
# everything is there: dpkg-query is asked first, apt-get only runs for what is missing.
#
# To need a new package, add it to DPIPE_DEPS below (one per line, with a word on why).

DPIPE_DEPS=(
        # build
        meson
        ninja-build
        pkg-config
        gcc
        clang                   # fuzz targets (tools/fuzz)
        libclang-rt-14-dev      # libFuzzer and sanitizer runtimes for clang
        libsystemd-dev          # sd-event, sd-bus, sd-daemon
        libjson-c-dev
        libcmocka-dev           # unit tests
        libcurl4-openssl-dev    # dpipe-connector-http
        libmicrohttpd-dev       # dpipe-source REST
        libssl-dev              # TLS of dpiped's client port and the client tools; token hashing
        libnats-dev             # cnats: dpipe-sink-nats (meson option nats)
        # run and test
        dbus                    # dbus-daemon for the private system bus of the tests and the demo
        systemd                 # systemd-socket-activate, busctl, systemd-analyze
        valgrind
        curl
        socat
        python3
        tmux
        iproute2                # ss
        util-linux              # setpriv
        openssl                 # the TLS tests make certificates and talk with openssl s_client
        groff-base              # tools/lint renders the man pages
        strace                  # test-writer-sync.sh injects sync faults with it
        nats-server             # the JetStream cluster of test-sink-nats.sh and bench/sink-bench.sh
        prometheus              # promtool: test-dpiped-metrics.sh checks /metrics and the example
                                # alert rules with it (Debian ships promtool only in this package)
        # systemd units tested in a booted container (tests/systemd/run)
        debootstrap
        systemd-container       # systemd-nspawn
)

# dp_deps_missing: prints the packages of DPIPE_DEPS that are not installed.
dp_deps_missing() {
        local p status
        for p in "${DPIPE_DEPS[@]}"; do
                status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
                [ "$status" = "install ok installed" ] || printf '%s\n' "$p"
        done
}

# dp_deps_install: installs what is missing (needs root, or sudo without a password).
dp_deps_install() {
        local missing sudo=
        if ! command -v dpkg-query >/dev/null 2>&1; then
                echo "tools: not a Debian system (no dpkg-query); install the packages listed in tools/lib-deps.sh by hand" >&2
                return 0
        fi
        mapfile -t missing < <(dp_deps_missing)
        [ "${#missing[@]}" -eq 0 ] && return 0
        if [ "$(id -u)" != 0 ]; then
                if command -v sudo >/dev/null 2>&1; then
                        sudo=sudo
                else
                        echo "tools: missing packages ${missing[*]} and not root; install them and retry" >&2
                        return 1
                fi
        fi
        echo "tools: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        # A fresh machine may have no package lists yet; an old list may name versions that are gone.
        if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >&2; then
                $sudo apt-get update -q </dev/null >&2 || return 1
                $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >&2 || return 1
        fi
}
