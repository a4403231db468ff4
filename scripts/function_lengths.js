#!/usr/bin/env node
// Function lengths in the TypeScript sources, as tidy measures them: from the line that names a
// function or method to the line that closes its body, by brace depth (strings and comments
// are stripped first). Prints "file:line name length" for each one longer than the limit.
// Usage: node scripts/function_lengths.js [limit=70]
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const start_pattern = new RegExp(
    '^\\s*(?:export\\s+)?(?:async\\s+)?function\\s*\\*?\\s*(\\w+)|' +
    '^\\s+(?:(?:private|public|protected|static|readonly|async|override|get|set)\\s+)*' +
    '(\\w+)\\s*(?:<[^>]*>)?\\(');
const keywords = new Set(['if', 'async', 'for', 'while', 'switch', 'catch', 'return', 'await',
    'new', 'throw', 'typeof', 'super', 'function', 'else', 'do', 'try', 'case', 'delete', 'void']);

/** The line with string, template and comment contents blanked out (braces inside ignored). */
function code_of(line) {
    return line.replace(/\/\/.*$/, '').replace(/'(?:\\.|[^'\\])*'/g, "''")
        .replace(/"(?:\\.|[^"\\])*"/g, '""').replace(/`(?:\\.|[^`\\])*`/g, '``');
}

function function_lengths(file) {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const found = [];
    for (let index = 0; index < lines.length; index++) {
        const match = start_pattern.exec(lines[index]);
        if (match === null) continue;
        const name = match[1] ?? match[2];
        if (keywords.has(name)) continue;
        // The body opens on the first line (of the signature) that ends with `{`.
        let open = index;
        while (open < lines.length && open < index + 12 &&
            !/\{\s*$/.test(code_of(lines[open]))) {
            if (/;\s*$/.test(code_of(lines[open]))) break; // A declaration, not a body.
            open += 1;
        }
        if (open >= lines.length || !/\{\s*$/.test(code_of(lines[open]))) continue;
        let depth = 0;
        let end = open;
        for (; end < lines.length; end++) {
            for (const character of code_of(lines[end])) {
                if (character === '{') depth += 1;
                if (character === '}') depth -= 1;
            }
            if (depth <= 0) break;
        }
        found.push({ line: index + 1, name, length: end - index + 1 });
    }
    return found;
}

function typescript_files(root) {
    const files = [];
    const pending = ['lib', 'test', 'bench'].map((directory) => path.join(root, directory));
    while (pending.length > 0) {
        const current = pending.pop();
        if (!fs.existsSync(current)) continue;
        for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
            const full = path.join(current, entry.name);
            if (entry.isDirectory()) pending.push(full);
            else if (entry.name.endsWith('.ts')) files.push(full);
        }
    }
    return files.sort();
}

module.exports = { function_lengths, typescript_files };

if (require.main === module) {
    const root = path.resolve(__dirname, '..');
    const limit = Number(process.argv[2] ?? 70);
    for (const file of typescript_files(root)) {
        for (const entry of function_lengths(file)) {
            if (entry.length > limit) {
                console.log(`${path.relative(root, file)}:${entry.line} ${entry.name} ` +
                    `${entry.length}`);
            }
        }
    }
}
