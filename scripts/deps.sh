#!/usr/bin/env bash
# deps.sh: install, with apt, whatever the build and the tests need and the machine lacks.
# Safe to run repeatedly: it only calls apt-get when a package is missing. Install before
# starting any cluster: upgrading postgresql-15 under a running server breaks it.
set -euo pipefail

pkgs=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libpq-dev libcivetweb-dev
	curl make gcc libipc-run-perl python3 python3-psycopg2 procps iproute2
	libssl-dev openssl clang-14 libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]} (run as root, or install them)" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
	apt-get update >/dev/null 2>&1
	apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
