#!/bin/sh
# Installs what natter's tests need beyond Go: nftables and iproute2 for the
# NAT lab (network namespaces, veth, masquerade). Idempotent; does nothing
# when they are present. Needs root to install; without root it only says
# what is missing (the lab tests then skip).
set -eu
missing=""
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v tc >/dev/null 2>&1 || missing="$missing iproute2"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "setup: missing:$missing; the NAT lab tests will skip (as root: apt-get install -y$missing)" >&2
	exit 0
fi
echo "setup: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null
