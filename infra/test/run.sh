#!/usr/bin/env bash
# `npm test`: prepare the machine, then run every test against private Redis and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/system/prepare.sh
# Test-only: a real Prometheus scrapes the platform in test/e2e/observability.test.ts.
if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "skiff: installing prometheus for the tests (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2; }
fi
npm run --silent typecheck
npm run --silent lint
exec node dist/infra/test/run-tests.js "$@"
