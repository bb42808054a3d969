#!/usr/bin/env bash
# `npm start`: prepare the machine (system packages, npm dependencies, build), then bring the
# whole platform up in the foreground. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/system/prepare.sh
exec node dist/infra/bringup/main.js
