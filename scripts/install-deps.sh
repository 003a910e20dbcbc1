#!/bin/sh
# Install the Debian 12 packages tessera builds and tests with (idempotent).
# Runs apt-get only when something is missing; uses sudo when not root.
set -eu
PKGS="build-essential cmake pkg-config libyaml-dev libjansson-dev libpcre2-dev libutf8proc-dev
      g++ python3 time jq"
# Optional plugins: AUTO builds them when these are present.
OPTIONAL_PKGS="${TESSERA_OPTIONAL_PKGS-libdnnl-dev hipcc libamdhip64-dev}"
missing=""
for p in $PKGS $OPTIONAL_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
