'use strict';
// Assertion density of the replica's layers: for lib/vsr, lib/storage and lib/ledger (or the
// directories given as arguments), the code lines, the assertions and the code lines per
// assertion. Plain Node, no dependencies: `node scripts/assert_density.js [directory...]`.
//
// Code lines are the non-blank lines of the .ts files that are not only comment (`//` lines and
// the lines of `/* ... */` blocks). An assertion is a call `assert(` or `assert.<name>(`
// (assert.equal, assert.ok, assert.fail, ...); each call on a line counts.
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const directories = process.argv.length > 2 ? process.argv.slice(2) :
  ['lib/vsr', 'lib/storage', 'lib/ledger'];
const assertion = /\bassert(\.[A-Za-z]+)?\s*\(/g;

function source_files(directory) {
  const files = [];
  const pending = [path.join(root, directory)];
  while (pending.length > 0) {
    const current = pending.pop();
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) pending.push(full);
      else if (entry.name.endsWith('.ts')) files.push(full);
    }
  }
  return files.sort();
}

/** Counts one file: { code_lines, asserts }. */
function count_file(file) {
  let code_lines = 0, asserts = 0, in_block = false;
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    let line = raw.trim();
    if (in_block) {
      const end = line.indexOf('*/');
      if (end === -1) continue;
      in_block = false;
      line = line.slice(end + 2).trim();
    }
    if (line.startsWith('/*')) {
      const end = line.indexOf('*/', 2);
      if (end === -1) { in_block = true; continue; }
      line = line.slice(end + 2).trim();
    }
    if (line === '' || line.startsWith('//')) continue;
    code_lines++;
    // Assertions in a trailing comment do not count.
    const comment = line.indexOf('//');
    const code = comment === -1 ? line : line.slice(0, comment);
    asserts += (code.match(assertion) || []).length;
  }
  return { code_lines, asserts };
}

const rows = [];
let total_code = 0, total_asserts = 0;
for (const directory of directories) {
  let code_lines = 0, asserts = 0;
  for (const file of source_files(directory)) {
    const counts = count_file(file);
    code_lines += counts.code_lines;
    asserts += counts.asserts;
  }
  total_code += code_lines;
  total_asserts += asserts;
  rows.push([directory, code_lines, asserts]);
}
rows.push(['total', total_code, total_asserts]);
const ratio = (code, asserts) => asserts === 0 ? 'none' : (code / asserts).toFixed(1);
console.log('directory      code_lines  asserts  lines_per_assert');
for (const [name, code, asserts] of rows) {
  console.log(`${name.padEnd(14)} ${String(code).padStart(10)} ${String(asserts).padStart(8)}` +
    `  ${ratio(code, asserts).padStart(16)}`);
}
