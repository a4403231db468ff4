// Style rules that can be checked mechanically, run as a test so that CI enforces them: line
// length, no synchronous file I/O on the data path, no skipped or focused tests, no leftover
// markers.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(__dirname, '..', '..');
const line_length_max = 100;

function source_files(directory: string, extensions: readonly string[]): string[] {
    const files: string[] = [];
    const pending: string[] = [path.join(root, directory)];
    for (let step = 0; step < 10_000 && pending.length > 0; step++) {
        const current = pending.pop()!;
        if (!fs.existsSync(current)) continue;
        for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
            const full = path.join(current, entry.name);
            if (entry.isDirectory()) pending.push(full);
            else if (extensions.some((extension) => entry.name.endsWith(extension))) {
                files.push(full);
            }
        }
    }
    assert.equal(pending.length, 0, 'tidy: source tree too deep to walk');
    return files.sort();
}

const typescript_files = ['lib', 'test', 'bench'].flatMap((d) => source_files(d, ['.ts']));
const script_files = source_files('scripts', ['.js', '.sh']);
const native_files = source_files('native', ['.cc', '.h']);

test('tidy: lines are at most 100 columns', () => {
    const violations: string[] = [];
    for (const file of [...typescript_files, ...native_files, ...script_files]) {
        const lines = fs.readFileSync(file, 'utf8').split('\n');
        lines.forEach((line, index) => {
            if (line.length > line_length_max) {
                violations.push(`${path.relative(root, file)}:${index + 1} (${line.length})`);
            }
        });
    }
    assert.deepEqual(violations, []);
});

test('tidy: no synchronous file writes on the data path', () => {
    // The replica's layers reach the disk only through the engine. Startup-only tools (cli, bench,
    // testing) may use node:fs.
    const data_path = typescript_files.filter((file) =>
        ['vsr', 'storage', 'lsm', 'ledger'].some((layer) =>
            file.includes(`${path.sep}lib${path.sep}${layer}${path.sep}`)),
    );
    const banned = /\b(writeFileSync|appendFileSync|writeSync)\s*\(/;
    const violations = data_path.filter((file) => banned.test(fs.readFileSync(file, 'utf8')));
    assert.deepEqual(violations.map((file) => path.relative(root, file)), []);
});

test('tidy: no skipped, focused or todo tests, no FIXME markers', () => {
    const banned = /(\btest\.(skip|only|todo)\s*\(|\{\s*skip\s*:\s*true|\bFIXME\b)/;
    const own = path.join(root, 'test', 'tidy.test.ts');
    const violations = [...typescript_files, ...native_files, ...script_files]
        .filter((file) => file !== own)
        .filter((file) => banned.test(fs.readFileSync(file, 'utf8')));
    assert.deepEqual(violations.map((file) => path.relative(root, file)), []);
});

/**
 * The layers of lib/, bottom first: a module imports only from its own layer or below. The
 * root modules (constants, prng) sit under everything; `index` (the package entry) above.
 * ARCHITECTURE.md names the same order.
 */
const layers: readonly string[] = [
    'root', 'io', 'storage', 'vsr', 'lsm', 'ledger', 'testing', 'client', 'server', 'cli', 'index',
];

function layer_of(file: string): string {
    const relative = path.relative(path.join(root, 'lib'), file).split(path.sep);
    if (relative.length === 1) return relative[0] === 'index.ts' ? 'index' : 'root';
    return relative[0]!;
}

/** Every upward import in lib/ as "file: layer -> layer (specifier)". */
export function upward_imports(files: readonly string[]): string[] {
    const violations: string[] = [];
    const pattern = /(?:from\s+|require\(|import\()['"](\.{1,2}\/[^'"]+)['"]/g;
    for (const file of files) {
        const from = layers.indexOf(layer_of(file));
        assert(from >= 0, `tidy: ${path.relative(root, file)} is in no known layer`);
        const text = fs.readFileSync(file, 'utf8');
        for (const match of text.matchAll(pattern)) {
            const target = path.resolve(path.dirname(file), match[1]!);
            const to = layers.indexOf(layer_of(`${target}.ts`));
            if (to > from) {
                violations.push(`${path.relative(root, file)}: ${layers[from]} -> ${layers[to]} ` +
                    `(${match[1]})`);
            }
        }
    }
    return violations;
}

test('tidy: layers import downward only', () => {
    const lib_files = source_files('lib', ['.ts']);
    assert.deepEqual(upward_imports(lib_files), []);
    // The check itself is not vacuous: an upward import in a scratch file is caught.
    const scratch = path.join(root, 'lib', 'storage', '.tidy_scratch.ts');
    fs.writeFileSync(scratch, "import { Replica } from '../vsr/replica';\n");
    try {
        assert.deepEqual(upward_imports([scratch]),
            ['lib/storage/.tidy_scratch.ts: storage -> vsr (../vsr/replica)']);
    } finally {
        fs.rmSync(scratch, { force: true });
    }
});

/**
 * Functions longer than this do not fit on a screen. The few that are longer today are listed
 * with their length: each may only shrink, and leaves the list once it fits.
 */
const function_lines_max = 70;
const function_lines_allowed: Readonly<Record<string, number>> = {
    'lib/ledger/ledger.ts execute_create': 87,
    'lib/testing/ledger_model.ts create_transfer': 78,
    'lib/testing/ledger_model.ts post_or_void': 76,
    'test/protocol_samples.ts constrain': 72,
};

test('tidy: functions are at most 70 lines (the listed few only shrink)', () => {
    const measure = require(path.join(root, 'scripts', 'function_lengths.js')) as {
        function_lengths(file: string): Array<{ line: number; name: string; length: number }>;
        typescript_files(root: string): string[];
    };
    const violations: string[] = [];
    const seen = new Set<string>();
    for (const file of measure.typescript_files(root)) {
        for (const entry of measure.function_lengths(file)) {
            if (entry.length <= function_lines_max) continue;
            const key = `${path.relative(root, file)} ${entry.name}`;
            seen.add(key);
            const allowed = function_lines_allowed[key];
            if (allowed === undefined || entry.length > allowed) {
                violations.push(`${key} (line ${entry.line}): ${entry.length} lines`);
            }
        }
    }
    for (const key of Object.keys(function_lines_allowed)) {
        if (!seen.has(key)) violations.push(`${key}: fits now, remove it from the list`);
    }
    assert.deepEqual(violations, []);
});

test('tidy: the replica\'s layers take time and randomness only through interfaces', () => {
    // Determinism: vsr, storage and ledger code gets time and randomness from the Time and
    // Random interfaces, so the simulator can replay a run from its seed.
    const layers_deterministic = ['vsr', 'storage', 'lsm', 'ledger'];
    const banned = /\b(Date\.now|new Date|performance\.now|process\.hrtime|Math\.random)\b/;
    const violations: string[] = [];
    for (const file of typescript_files) {
        if (!layers_deterministic.some((layer) =>
            file.includes(`${path.sep}lib${path.sep}${layer}${path.sep}`))) continue;
        fs.readFileSync(file, 'utf8').split('\n').forEach((line, index) => {
            const code = line.replace(/\/\/.*$/, '');
            if (banned.test(code)) violations.push(`${path.relative(root, file)}:${index + 1}`);
        });
    }
    assert.deepEqual(violations, []);
});
