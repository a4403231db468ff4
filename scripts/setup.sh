#!/usr/bin/env bash
# Sets up a fresh clone: installs liburing's headers when they are missing (as root, via the system
# package manager), then installs the npm dependencies, which builds the addon.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/include/liburing.h ] && [ ! -f /usr/local/include/liburing.h ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "ringledger: liburing headers are missing; run as root or install liburing-dev" >&2
    exit 1
  fi
  if command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liburing-dev
  elif command -v dnf >/dev/null; then
    dnf install -y liburing-devel
  elif command -v apk >/dev/null; then
    apk add liburing-dev
  else
    echo "ringledger: no known package manager; install liburing headers by hand" >&2
    exit 1
  fi
fi

npm ci --no-audit --no-fund
