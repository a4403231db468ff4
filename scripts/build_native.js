'use strict';
// Builds the C++ addon with node-gyp into build/Release/ringledger.node, quietly: one line when it
// builds, node-gyp's whole output only when the build fails. An addon built from the same inputs
// (sources, build files, Node's ABI, node-addon-api) is kept, so `npm run demo` or `npm test`
// after a change to TypeScript only does not spend ten seconds recompiling C++. --force rebuilds.
// Node's own headers are used when they are installed beside the running node (as Debian's nodejs
// package and most images do), so the build works without a network connection.
const child_process = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const addon = path.join(root, 'build', 'Release', 'ringledger.node');
const stamp = path.join(root, 'build', 'Release', 'ringledger.inputs');

/** A digest of everything the addon is compiled from. */
function inputs_digest() {
  const hash = crypto.createHash('sha256');
  const files = ['binding.gyp', 'scripts/check_liburing.js', 'scripts/build_native.js'];
  for (const name of fs.readdirSync(path.join(root, 'native')).sort()) files.push(`native/${name}`);
  for (const file of files) {
    hash.update(`${file}\0`);
    hash.update(fs.readFileSync(path.join(root, file)));
  }
  const addon_api = require.resolve('node-addon-api/package.json', { paths: [root] });
  hash.update(`node-addon-api ${require(addon_api).version}\0`);
  hash.update(`node ${process.versions.modules} ${process.arch} ${process.execPath}\0`);
  hash.update(`env ${process.env.CXX ?? ''} ${process.env.CXXFLAGS ?? ''}\0`);
  return hash.digest('hex');
}

function node_gyp_path() {
  // npm sets npm_config_node_gyp to the node-gyp it bundles; a clone has its own in node_modules.
  try {
    return require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
  } catch {
    const bundled = process.env.npm_config_node_gyp;
    if (bundled !== undefined && fs.existsSync(bundled)) return bundled;
    throw new Error('ringledger: node-gyp was not found (it ships with npm; run the build ' +
      'through npm, e.g. `npm rebuild ringledger`)');
  }
}

function main() {
  const force = process.argv.includes('--force');
  const digest = inputs_digest();
  if (!force && fs.existsSync(addon) && fs.existsSync(stamp) &&
      fs.readFileSync(stamp, 'utf8') === digest) {
    return 0;
  }
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const args = ['rebuild', '--release', '-j', '2', '--loglevel=error'];
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node.h'))) {
    args.push(`--nodedir=${prefix}`);
  }
  process.stderr.write('ringledger: building the native addon (C++, about 10 s)...\n');
  const started_ms = Date.now();
  const result = child_process.spawnSync(process.execPath, [node_gyp_path(), ...args], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    process.stderr.write(result.stdout ?? '');
    process.stderr.write(result.stderr ?? '');
    process.stderr.write(`ringledger: the native addon did not build (exit ${result.status}); ` +
      'the output above says why\n');
    return result.status === null ? 1 : result.status;
  }
  fs.writeFileSync(stamp, digest);
  const seconds = ((Date.now() - started_ms) / 1000).toFixed(1);
  process.stderr.write(`ringledger: built ${path.relative(root, addon)} in ${seconds} s\n`);
  return 0;
}

process.exitCode = main();
