#!/usr/bin/env bash
# Install the Debian 12 packages the simsip real lab needs. Idempotent; needs root.
set -uo pipefail
PKGS=(kamailio kamailio-postgres-modules keepalived sip-tester tshark iproute2 iptables
      postgresql procps baresip)
if [ "$(id -u)" -ne 0 ]; then
  echo "lab/install.sh: must run as root (apt-get install)" >&2; exit 1
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "lab/install.sh: all lab packages already installed"; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
# Do not let the postgresql package start a cluster service in the root namespace
# (the lab starts its own server inside its db namespace).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
cleanup() { [ "$created_policy" = 1 ] && rm -f "$policy"; }
trap cleanup EXIT
echo "lab/install.sh: installing ${missing[*]}"
if ! apt-get update -q; then
  echo "lab/install.sh: apt-get update failed" >&2; exit 1
fi
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  echo "lab/install.sh: apt-get install failed for: ${missing[*]}" >&2; exit 1
fi
for b in kamailio keepalived sipp tshark ip baresip; do
  command -v "$b" >/dev/null 2>&1 || { echo "lab/install.sh: $b not found after install" >&2; exit 1; }
done
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { echo "lab/install.sh: postgres server binary missing" >&2; exit 1; }
echo "lab/install.sh: done"
