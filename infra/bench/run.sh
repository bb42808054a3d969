#!/usr/bin/env bash
# `npm run bench`: prepare the machine (system packages, npm dependencies, a fresh build), then
# measure Skiff against baselines run in the same process. Prints a table; writes the figures to
# bench/results/latest.json. Needs root (runc), like `npm start` and `npm test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/system/prepare.sh
exec node dist/bench/main.js "$@"
