// The loader's message when no addon loads: what failed, which prebuilds the package has, what a
// source build lacks, and the one command that fixes it. The target it looks for, and the glibc
// floor of a prebuild, checked before it is loaded (by the loader and by the install script).
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { binding, binding_candidates, binding_missing_message } from '../lib/io/binding';
import { root } from './server_process';

const native_target = require(path.join(root, 'scripts', 'native_target.js')) as {
    target_name(): string;
    libc_name(): string;
    glibc_version(): string | null;
    prebuild_path(target?: string): string;
    prebuild_refusal(target?: string, glibc?: string | null): string | null;
};

function target_fake(shipped: string[], missing: string[], refusal: string | null = null) {
    return {
        target_name: () => 'linux-riscv64-glibc',
        prebuild_path: () => '/package/prebuilds/linux-riscv64-glibc/ringledger.node',
        prebuild_refusal: () => refusal,
        prebuild_targets: () => shipped,
        source_build_paths: () => ['/package/build/Release/ringledger.node'],
        source_build_missing: () => missing,
        source_build_fix: () => 'apt-get install -y g++ make python3 liburing-dev && ' +
            'npm rebuild ringledger',
    };
}

test('native loader: no prebuild fits, and a source build lacks tools', () => {
    const message = binding_missing_message(
        target_fake(['linux-arm64-glibc', 'linux-x64-glibc'], ['a C++ compiler (g++)', 'make']),
        []);
    assert.match(message, /No prebuilt addon fits linux-riscv64-glibc \(this package has: /);
    assert.match(message, /linux-arm64-glibc, linux-x64-glibc\), and there is no source build/);
    assert.match(message,
        /A source build needs what is missing: a C\+\+ compiler \(g\+\+\), make/);
    assert.match(message,
        /Fix: `apt-get install -y g\+\+ make python3 liburing-dev && npm rebuild/);
});

test('native loader: a prebuild that fails to load is shown with its error', () => {
    const message = binding_missing_message(target_fake(['linux-riscv64-glibc'], []),
        ['  /package/prebuilds/linux-riscv64-glibc/ringledger.node: GLIBC_2.34 not found']);
    assert.match(message, /These failed to load:\n {2}\/package\/prebuilds.*GLIBC_2\.34 not found/);
    assert.match(message, /The prebuilt addon for linux-riscv64-glibc did not load/);
    assert.match(message, /Fix: `npm rebuild ringledger`/);
});

test('native loader: the target names platform, arch and libc', () => {
    assert.equal(native_target.target_name(),
        `${process.platform}-${process.arch}-${native_target.libc_name()}`);
    assert.equal(native_target.libc_name(), 'glibc'); // Debian, this project's machines.
    assert(native_target.prebuild_path().endsWith(
        `prebuilds/linux-${process.arch}-glibc/ringledger.node`));
    assert.equal(typeof binding().checksum_implementation, 'function');
});

test('native loader: a glibc below a prebuild\'s floor refuses it, and only below', () => {
    const refusal = native_target.prebuild_refusal;
    assert.equal(refusal('linux-x64-glibc', '2.13'), 'the prebuilt addon for linux-x64-glibc ' +
        'needs glibc 2.14 or newer, and this system has glibc 2.13');
    assert.equal(refusal('linux-x64-glibc', '2.9'), 'the prebuilt addon for linux-x64-glibc ' +
        'needs glibc 2.14 or newer, and this system has glibc 2.9');
    assert.equal(refusal('linux-x64-glibc', '2.14'), null);
    assert.equal(refusal('linux-x64-glibc', '2.36'), null);
    assert.equal(refusal('linux-arm64-glibc', '2.16'), 'the prebuilt addon for ' +
        'linux-arm64-glibc needs glibc 2.17 or newer, and this system has glibc 2.16');
    assert.equal(refusal('linux-arm64-glibc', '2.17'), null);
    assert.equal(refusal('linux-x64-musl', null), null);
    // This machine's own glibc (Debian 12's 2.36) is above both floors.
    assert.match(native_target.glibc_version() ?? '', /^2\.\d+$/);
    assert.equal(refusal(), null);
});

test('native loader: a refused prebuild is not loaded; the message says why and the fix', () => {
    const reason = 'the prebuilt addon for linux-riscv64-glibc needs glibc 2.17 or newer, and ' +
        'this system has glibc 2.12';
    const target = target_fake(['linux-riscv64-glibc'], ['a C++ compiler (g++)'], reason);
    const refusals: string[] = [];
    assert.deepEqual(binding_candidates(target, refusals),
        ['/package/build/Release/ringledger.node']);
    assert.deepEqual(refusals,
        [`  /package/prebuilds/linux-riscv64-glibc/ringledger.node: not loaded: ${reason}`]);
    const message = binding_missing_message(target, refusals);
    assert(message.includes(`These failed to load:\n${refusals[0]}\n`), message);
    assert(message.includes('A source build needs what is missing: a C++ compiler (g++).'));
    assert(message.includes('Fix: `apt-get install -y g++ make python3 liburing-dev && ' +
        'npm rebuild ringledger`'));
    const allowed: string[] = [];
    assert.deepEqual(binding_candidates(target_fake(['linux-riscv64-glibc'], []), allowed),
        ['/package/build/Release/ringledger.node',
            '/package/prebuilds/linux-riscv64-glibc/ringledger.node']);
    assert.deepEqual(allowed, []);
});

test('native loader: the install script refuses a prebuild below its glibc floor', () => {
    // A package copy whose prebuild is not an ELF file: were it loaded, the error would say so.
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'ringledger-install-floor-'));
    try {
        fs.mkdirSync(path.join(directory, 'scripts'));
        for (const name of ['install.js', 'native_target.js']) {
            fs.copyFileSync(path.join(root, 'scripts', name),
                path.join(directory, 'scripts', name));
        }
        const target = native_target.target_name();
        fs.mkdirSync(path.join(directory, 'prebuilds', target), { recursive: true });
        fs.writeFileSync(path.join(directory, 'prebuilds', target, 'ringledger.node'), 'not ELF');
        // The process report is where both read the glibc version; this one reports 2.12.
        const preload = path.join(directory, 'glibc_2_12.js');
        fs.writeFileSync(preload, 'const report = process.report.getReport;\n' +
            'process.report.getReport = () => { const value = report.call(process.report);\n' +
            '  value.header.glibcVersionRuntime = "2.12"; return value; };\n');
        // No PATH: the source build finds no compiler, make or python3.
        const result = child_process.spawnSync(process.execPath,
            ['-r', preload, path.join(directory, 'scripts', 'install.js')],
            { encoding: 'utf8', env: { PATH: '' }, timeout: 30_000 });
        assert.equal(result.status, 1, result.stderr);
        const floor = process.arch === 'arm64' ? '2.17' : '2.14';
        const lines = result.stderr.trim().split('\n');
        assert.equal(lines[0], `ringledger: the prebuilt addon for ${target} needs glibc ` +
            `${floor} or newer, and this system has glibc 2.12; building from source.`);
        // liburing's headers are looked for at fixed paths, so whether they count as missing is
        // this machine's affair.
        const missing = 'a C++ compiler (g++), make, python3' + (fs.existsSync(
            '/usr/include/liburing.h') ? '' : ', liburing headers (liburing.h)');
        assert.equal(lines[1], `ringledger: cannot build the native addon: missing ${missing}. ` +
            'Fix: `install g++, make, python3 and liburing\'s headers, then npm rebuild ' +
            'ringledger`');
        assert.equal(lines.length, 2);
    } finally {
        fs.rmSync(directory, { recursive: true, force: true });
    }
});
