#!/usr/bin/env bash
# Installs a Skiff node on a Debian host without containers: system packages, the checkout at
# /opt/skiff (run from a clone of the repository), the build, and the systemd units.
# Usage: sudo infra/deploy/install-node.sh [worker|gateway|scheduler]...
set -euo pipefail
roles=("${@:-worker}")
src="$(cd "$(dirname "$0")/../.." && pwd)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends runc mount util-linux libc-bin nodejs npm >/dev/null
if [ "$src" != /opt/skiff ]; then
  mkdir -p /opt/skiff
  cp -a "$src/." /opt/skiff/
fi
cd /opt/skiff
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
mkdir -p /etc/skiff /var/lib/skiff
[ -f /etc/skiff/skiff.env ] || cp infra/deploy/skiff.env.example /etc/skiff/skiff.env
for role in "${roles[@]}"; do
  cp "infra/deploy/skiff-$role.service" /etc/systemd/system/
done
systemctl daemon-reload
echo "skiff: installed ${roles[*]}. Edit /etc/skiff/skiff.env, then: systemctl enable --now ${roles[*]/#/skiff-}"
