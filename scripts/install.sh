#!/usr/bin/env bash
# Install converge on a Debian or Ubuntu machine, as root.
#   scripts/install.sh          converge itself
#   scripts/install.sh --dev    also what the test suite needs (system packages included)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

# System packages the lab and the end-to-end tests use (strace: which argv holds
# a secret). Installing them must not
# start any daemon on this machine: a temporary policy-rc.d forbids it.
APT_PACKAGES="openssh-server openssh-client iproute2 dpkg-dev util-linux procps cron libcap2-bin sudo strace"
# gpg signs the throwaway apt repositories of the apt_repository tests (in lab nodes).
APT_PACKAGES="$APT_PACKAGES gpg"
# The run store's tests start a throwaway PostgreSQL cluster; the HTML report is
# opened in headless Chromium (neither is started by installing them).
APT_PACKAGES="$APT_PACKAGES postgresql chromium chromium-driver"
# Lab images (converge lab image build debian-12) are Debian root file systems that
# mmdebstrap builds from the archive this machine's apt uses.
APT_PACKAGES="$APT_PACKAGES mmdebstrap"

if [ "$dev" = 1 ]; then
    # Package lists are also what the lab mirrors real packages (sysstat, chrony)
    # from, for nodes that have no network.
    apt-get update -qq
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
        apt-get install -y -qq --no-install-recommends $missing
        [ "$made_policy" = 1 ] && rm -f "$policy"
    fi
fi

# pip itself, where the distribution ships Python without it.
if ! python3 -m pip --version >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip
fi
# Debian 12 marks its Python "externally managed" (PEP 668): say we mean it.
pip_flags="-q"
if python3 -c 'import sys, sysconfig, os; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")))'; then
    pip_flags="$pip_flags --break-system-packages"
fi
# The distribution was named "converge" before it became converge-ops: an editable
# install of that name (from a checkout) would put another copy on the path first.
if python3 -m pip show converge 2>/dev/null | grep -q '^Editable project location:'; then
    python3 -m pip uninstall $pip_flags -y converge
fi
# compat mode: a plain path entry, no import hook to slow down every start-up
if [ "$dev" = 1 ]; then
    python3 -m pip install $pip_flags -e '.[dev]' --config-settings editable_mode=compat
else
    python3 -m pip install $pip_flags -e . --config-settings editable_mode=compat
fi
