#!/usr/bin/env bash
# Installs a packed ringledger tarball in a clean Debian root filesystem, as a user's machine
# without build tools would be: debootstrap's minbase (no compiler, no make, no python3, no
# liburing), with this machine's Node 20 and npm copied in. `npm install <tarball>` must succeed
# without compiling; then `npx ringledger demo` and a client script run inside it.
# Usage (as root): bash scripts/clean_rootfs_install.sh <tarball> [client-script.js]
# The Debian release is bookworm (12) unless RINGLEDGER_ROOTFS_SUITE names another; bullseye (11,
# glibc 2.31) is the oldest in Debian's registry that Node 20 (glibc 2.28 or newer) runs on.
# The root filesystem lives under build/clean-rootfs in this clone and is removed at the end, also
# on failure; debootstrap fetches from Debian's registry (about 35 s here).
set -euo pipefail
cd "$(dirname "$0")/.."
tarball="$(realpath "$1")"
client_script="${2:-}"
rootfs="$PWD/build/clean-rootfs"
suite="${RINGLEDGER_ROOTFS_SUITE:-bookworm}"

if [ "$(id -u)" != "0" ]; then echo "clean_rootfs_install: needs root (chroot)" >&2; exit 1; fi
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

cleanup() {
  umount "$rootfs/proc" 2>/dev/null || true
  rm -rf "$rootfs"
}
trap cleanup EXIT
cleanup
mkdir -p "$rootfs"

started=$(date +%s)
timeout 240 debootstrap --variant=minbase "$suite" "$rootfs" http://deb.debian.org/debian \
  >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
echo "clean_rootfs_install: debootstrap of $suite took $(( $(date +%s) - started )) s"

# Node and npm from this machine: Debian's own nodejs (18 in 12, 12 in 11) is below engines.node.
node_path="$(command -v node)"
npm_root="$(npm root -g)"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/lib/node_modules"
cp "$node_path" "$rootfs/usr/local/bin/node"
cp -a "$npm_root/npm" "$rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
cp "$tarball" "$rootfs/tmp/ringledger.tgz"
if [ -n "$client_script" ]; then cp "$client_script" "$rootfs/tmp/client.js"; fi
mount -t proc proc "$rootfs/proc"

# What the clean machine must lack, or the test proves nothing.
for tool in cc gcc g++ c++ make python3; do
  if chroot "$rootfs" /bin/sh -c "command -v $tool" >/dev/null; then
    echo "clean_rootfs_install: $tool is in the root filesystem" >&2; exit 1
  fi
done
if find "$rootfs/usr" -name 'liburing*' | grep -q .; then
  echo "clean_rootfs_install: liburing is in the root filesystem" >&2; exit 1
fi

chroot "$rootfs" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
  /bin/bash -euo pipefail -c '
  echo "clean_rootfs_install: $(ldd --version | head -n 1)"
  mkdir -p /root/app && cd /root/app
  echo "{\"name\":\"app\",\"version\":\"1.0.0\",\"private\":true}" > package.json
  started=$(date +%s%N)
  npm install --offline --no-audit --no-fund /tmp/ringledger.tgz   # needs no registry
  echo "clean_rootfs_install: npm install took $(( ($(date +%s%N) - started) / 1000000 )) ms"
  test ! -e node_modules/ringledger/build || { echo "a source build ran" >&2; exit 1; }
  npx ringledger demo --seconds=1
  if [ -f /tmp/client.js ]; then
    npx ringledger format --cluster=0 --replica=0 --replica-count=1 ./client.ringledger
    npx ringledger start --addresses=3000 ./client.ringledger > start.log &
    for step in $(seq 1 100); do grep -q "listening on" start.log && break; sleep 0.1; done
    cp /tmp/client.js ./client.js && node client.js 3000
    kill $! && wait
  fi
'
echo "clean_rootfs_install: ok in $(( $(date +%s) - started )) s"
