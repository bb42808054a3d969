#!/usr/bin/env bash
# `npm test`: prepare the machine, then run every test against private Redis and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/system/prepare.sh
npm run --silent typecheck
npm run --silent lint
exec node dist/infra/test/run-tests.js "$@"
