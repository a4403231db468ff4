// The loader's message when no addon loads: what failed, which prebuilds the package has, what a
// source build lacks, and the one command that fixes it. And the target it looks for.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { binding, binding_missing_message } from '../lib/io/binding';
import { root } from './server_process';

const native_target = require(path.join(root, 'scripts', 'native_target.js')) as
    { target_name(): string; libc_name(): string; prebuild_path(target?: string): string };

function target_fake(shipped: string[], missing: string[]) {
    return {
        target_name: () => 'linux-riscv64-glibc',
        prebuild_path: () => '/package/prebuilds/linux-riscv64-glibc/ringledger.node',
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
