#!/usr/bin/env bash
# `npm test`: prepare the machine, then run every test against private Redis, PostgreSQL and registry.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/system/prepare.sh

# Test-only tools, installed with apt when missing (as root):
#  prometheus  scrapes the platform in test/e2e/observability.test.ts;
#  chromium    is driven by playwright-core in test/e2e/dashboard.test.ts (no browser download);
#  htpasswd    writes the password file of a registry with Basic auth in test/unit/registry-client.test.ts.
test_tool() {
  local path="$1" package="$2"
  [ -x "$path" ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "skiff: $path is missing: install the Debian package $package for the tests" >&2
    return 0
  fi
  echo "skiff: installing $package for the tests (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >&2; }
}
test_tool /usr/bin/prometheus prometheus
test_tool /usr/bin/chromium chromium
test_tool /usr/bin/htpasswd apache2-utils

npm run --silent typecheck
npm run --silent lint
# The platform runs on Node.js 20, 22 and 24: the unit suite runs under the pinned 22 too (below,
# every test runs under this `node`). Its binary is the nodejs22 runtime's, fetched once.
node22="$(node dist/infra/test/node-binary.js nodejs22)"
echo "skiff: unit tests under $("$node22" --version)"
"$node22" dist/infra/test/run-unit.js
exec node dist/infra/test/run-tests.js "$@"
