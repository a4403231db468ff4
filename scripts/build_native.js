'use strict';
// Builds the C++ addon with node-gyp. Node's own headers are used when they are installed beside
// the running node (as Debian's nodejs package and most images do), so the build works without a
// network connection to download headers.
const child_process = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const prefix = path.resolve(path.dirname(process.execPath), '..');
const args = ['rebuild', '--release', '-j', '2'];
if (fs.existsSync(path.join(prefix, 'include', 'node', 'node.h'))) {
  args.push(`--nodedir=${prefix}`);
}
const node_gyp = require.resolve('node-gyp/bin/node-gyp.js');
const result = child_process.spawnSync(process.execPath, [node_gyp, ...args], {
  stdio: 'inherit',
  cwd: path.resolve(__dirname, '..'),
});
process.exit(result.status === null ? 1 : result.status);
