#!/usr/bin/env bash
# Makes this machine ready to run Skiff: the system packages it needs (installed with apt when
# missing), the npm dependencies, and a fresh build. Used by `npm start` and `npm test`.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf 'skiff: %s\n' "$*" >&2; }

# command → Debian package that provides it
declare -A NEEDED=(
  [runc]=runc
  [redis-server]=redis-server
  [redis-sentinel]=redis-sentinel
  [mount]=mount
  [ldd]=libc-bin
  [iptables]=iptables
  [ip]=iproute2
  [bridge]=iproute2
  [docker-registry]=docker-registry
  [setfattr]=attr
)
missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
# The python3.11 runtime's image is built from Debian's interpreter (not a pyenv/venv one).
[ -x /usr/bin/python3.11 ] || missing+=(python3.11)
# The provided runtime's image: Debian's static busybox as its userland, and its Runtime API relay
# compiled from C and linked statically (gcc, with libc6-dev's static libc).
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || ls /usr/lib/*/libc.a >/dev/null 2>&1 || missing+=(libc6-dev)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing system packages: ${missing[*]}"
    say "install them (Debian: apt-get install ${missing[*]}) and run this again; Skiff needs root to run containers."
    exit 1
  fi
  say "installing system packages: ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # Debian starts its own redis, sentinel and PostgreSQL services on install; Skiff runs private
  # instances (the tests' sentinels too: infra/services/redis-sentinel.ts).
fi

if [ "$(id -u)" -ne 0 ]; then
  say "Skiff runs containers with runc and must run as root (try: sudo npm start)"
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

say "building (tsc)"
npm run --silent build >&2
