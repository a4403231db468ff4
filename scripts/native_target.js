'use strict';
// Which compiled addon fits this machine, and what a source build would need. Shared by the
// install script (scripts/install.js, which runs before any TypeScript is compiled) and the
// loader (lib/io/binding.ts), so both name the same target, paths and fix.
//
// Prebuilt addons ship inside the package as prebuilds/<platform>-<arch>-<libc>/ringledger.node
// (built by scripts/build_prebuilds.js, liburing linked statically); a source build goes to
// build/Release/ringledger.node.
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const addon_name = 'ringledger.node';

let report_header = null;

/** The process report's header, read once (a report takes milliseconds). */
function process_header() {
  if (report_header === null) report_header = process.report.getReport().header ?? {};
  return report_header;
}

/** 'glibc' or 'musl': glibc reports its version in the process report, musl has none. */
function libc_name() {
  if (process.platform !== 'linux') return 'unknown';
  return glibc_version() === null ? 'musl' : 'glibc';
}

/** The running glibc's version, e.g. '2.36', or null when the libc is not glibc. */
function glibc_version() {
  const version = process_header().glibcVersionRuntime;
  return typeof version === 'string' ? version : null;
}

/**
 * The oldest glibc each glibc prebuild runs on. scripts/build_prebuilds.js refuses a build that
 * imports a newer symbol version, and the loader and the install script refuse the prebuild,
 * before dlopen, on an older glibc: dlopen would fail naming one symbol, not the glibc needed.
 */
const glibc_floors = { 'linux-x64-glibc': '2.14', 'linux-arm64-glibc': '2.17' };

/** Compares dotted versions ('2.9' < '2.14'): negative, zero or positive. */
function version_compare(a, b) {
  const left = a.split('.').map(Number);
  const right = b.split('.').map(Number);
  for (let index = 0; index < Math.max(left.length, right.length); index++) {
    const difference = (left[index] ?? 0) - (right[index] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

/** Why the prebuild for `target` cannot run under `glibc` (a version), or null when it can. */
function prebuild_refusal(target = target_name(), glibc = glibc_version()) {
  const floor = glibc_floors[target];
  if (floor === undefined || glibc === null || version_compare(glibc, floor) >= 0) return null;
  return `the prebuilt addon for ${target} needs glibc ${floor} or newer, and this system has ` +
    `glibc ${glibc}`;
}

/** e.g. 'linux-x64-glibc': the folder under prebuilds/ that fits this process. */
function target_name() {
  return `${process.platform}-${process.arch}-${libc_name()}`;
}

function prebuild_path(target = target_name()) {
  return path.join(root, 'prebuilds', target, addon_name);
}

/** The prebuilt targets this copy of the package carries, sorted. */
function prebuild_targets() {
  const directory = path.join(root, 'prebuilds');
  if (!fs.existsSync(directory)) return [];
  return fs.readdirSync(directory)
    .filter((name) => fs.existsSync(path.join(directory, name, addon_name)))
    .sort();
}

function source_build_paths() {
  return [
    path.join(root, 'build', 'Release', addon_name),
    path.join(root, 'build', 'Debug', addon_name),
  ];
}

function command_found(name) {
  const directories = (process.env.PATH ?? '').split(':').filter((entry) => entry !== '');
  return directories.some((directory) => {
    try {
      fs.accessSync(path.join(directory, name), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const liburing_header_paths = ['/usr/include/liburing.h', '/usr/local/include/liburing.h'];

/** What a source build needs that this machine lacks: a list of names, empty when complete. */
function source_build_missing() {
  const missing = [];
  const compiler = process.env.CXX ?? 'g++';
  if (!command_found(compiler)) missing.push(`a C++ compiler (${compiler})`);
  if (!command_found('make')) missing.push('make');
  if (!command_found('python3')) missing.push('python3');
  if (!liburing_header_paths.some((header) => fs.existsSync(header))) {
    missing.push('liburing headers (liburing.h)');
  }
  return missing;
}

/** The one command that installs what a source build needs and builds, for this distribution. */
function source_build_fix() {
  const rebuild = 'npm rebuild ringledger';
  if (command_found('apt-get')) {
    return `apt-get install -y g++ make python3 liburing-dev && ${rebuild}`;
  }
  if (command_found('apk')) {
    return `apk add g++ make python3 linux-headers liburing-dev && ${rebuild}`;
  }
  if (command_found('dnf')) {
    return `dnf install -y gcc-c++ make python3 liburing-devel && ${rebuild}`;
  }
  return `install g++, make, python3 and liburing's headers, then ${rebuild}`;
}

module.exports = {
  addon_name,
  libc_name,
  glibc_version,
  glibc_floors,
  version_compare,
  prebuild_refusal,
  target_name,
  prebuild_path,
  prebuild_targets,
  source_build_paths,
  source_build_missing,
  source_build_fix,
};
