#!/usr/bin/env bash
# Install converge on a Debian or Ubuntu machine, as root.
#   scripts/install.sh          converge itself
#   scripts/install.sh --dev    also what the test suite needs (system packages included)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

# System packages the lab and the end-to-end tests use. Installing them must not
# start any daemon on this machine: a temporary policy-rc.d forbids it.
APT_PACKAGES="openssh-server openssh-client iproute2 dpkg-dev util-linux procps cron libcap2-bin"

if [ "$dev" = 1 ]; then
    missing=""
    for p in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        policy=/usr/sbin/policy-rc.d
        made_policy=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 0755 "$policy"; made_policy=1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $missing
        [ "$made_policy" = 1 ] && rm -f "$policy"
    fi
    python3 -m pip install -q -e '.[dev]'
else
    python3 -m pip install -q -e .
fi
