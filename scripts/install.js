'use strict';
// npm's install step for ringledger. A prebuilt addon for this platform, arch and libc ships in
// the package (prebuilds/), so installing compiles nothing; only when none fits, or the one that
// fits cannot run here (a glibc older than its floor, checked before loading it) or does not
// load, the addon is built from source, and a build that cannot start says what is missing and
// the one command that fixes it.
// RINGLEDGER_BUILD_FROM_SOURCE=1 skips the prebuild.
const child_process = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const native_target = require('./native_target');

function prebuild_loads(file) {
  // In a child, so a crash or a hang in a broken binary cannot take the install with it.
  const result = child_process.spawnSync(process.execPath,
    ['-e', `require(${JSON.stringify(file)})`], { encoding: 'utf8', timeout: 30_000 });
  return { loaded: result.status === 0, error: (result.stderr ?? '').trim().split('\n')[0] };
}

function main() {
  const target = native_target.target_name();
  const prebuild = native_target.prebuild_path(target);
  const from_source = process.env.RINGLEDGER_BUILD_FROM_SOURCE === '1';
  const refusal = native_target.prebuild_refusal(target);
  if (!from_source && refusal !== null && fs.existsSync(prebuild)) {
    process.stderr.write(`ringledger: ${refusal}; building from source.\n`);
  } else if (!from_source && fs.existsSync(prebuild)) {
    const { loaded, error } = prebuild_loads(prebuild);
    if (loaded) return 0;
    process.stderr.write(`ringledger: the prebuilt addon for ${target} does not load here ` +
      `(${error}); building from source.\n`);
  } else if (!from_source) {
    const shipped = native_target.prebuild_targets();
    // A clone has no prebuilds: building is the expected path there, not news.
    if (shipped.length > 0) {
      process.stderr.write(`ringledger: no prebuilt addon for ${target} (this package has ` +
        `${shipped.join(', ')}); building from source.\n`);
    }
  }
  const missing = native_target.source_build_missing();
  if (missing.length > 0) {
    process.stderr.write(`ringledger: cannot build the native addon: missing ` +
      `${missing.join(', ')}. Fix: \`${native_target.source_build_fix()}\`\n`);
    return 1;
  }
  const build = path.join(__dirname, 'build_native.js');
  const result = child_process.spawnSync(process.execPath, [build], { stdio: 'inherit' });
  return result.status === null ? 1 : result.status;
}

process.exitCode = main();
