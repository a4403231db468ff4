// The linux-arm64-glibc prebuild on arm64 (Debian 12's Node 18.20.4 under qemu-user, see
// scripts/qemu_arm64.js): the loader picks it, it loads, format and start run with the libuv
// engine and a client reads its balances back; without --io=libuv, format says why io_uring is
// missing. Only with RINGLEDGER_TEST_ARM64=1 (root, network for the first debootstrap): the first
// run makes the arm64 root filesystem (minutes), later runs take about a minute under emulation.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

import { root } from './server_process';

if (process.env.RINGLEDGER_TEST_ARM64 === '1') {
    test('arm64: the prebuild loads and serves a client under qemu', { timeout: 1_200_000 },
        (context) => {
            const result = child_process.spawnSync(process.execPath,
                [path.join(root, 'scripts', 'qemu_arm64.js')],
                { encoding: 'utf8', timeout: 1_150_000, killSignal: 'SIGKILL' });
            const output = `${result.stdout}${result.stderr}`;
            assert.equal(result.status, 0, output);
            const lines = result.stdout.trim().split('\n');
            for (const line of lines) context.diagnostic(line);
            const loader = JSON.parse(line_after(lines, 'qemu_arm64: loader: '));
            assert.equal(loader.arch, 'arm64');
            assert.equal(loader.target, 'linux-arm64-glibc');
            assert.equal(loader.glibc, '2.36');
            assert.equal(loader.refusal, null);
            assert.equal(loader.loaded.length, 1);
            assert(loader.loaded[0].endsWith('/prebuilds/linux-arm64-glibc/ringledger.node'));
            assert.equal(loader.checksum, 'portable'); // No AES-NI path on arm64.
            assert(Number(loader.napi) >= 9, `Node-API ${loader.napi}: the addon needs 9`);
            assert.equal(line_after(lines, 'qemu_arm64: format without io_uring: '),
                'exit 1: ringledger format: io_uring is not available (io_uring_setup: ENOSYS): ' +
                'the kernel is too old or was built without CONFIG_IO_URING, or a seccomp ' +
                'profile answers ENOSYS for io_uring_setup. Fix: Linux 5.11 or newer with ' +
                'io_uring enabled, and a seccomp profile that allows io_uring_setup, ' +
                'io_uring_enter and io_uring_register. Or use the libuv engine.');
            assert(lines.includes('qemu_arm64: format --io=libuv: ok'));
            assert.deepEqual(JSON.parse(line_after(lines, 'qemu_arm64: client: ')), {
                accounts: [true, true], transfers: [true], balances: [['25', '0'], ['0', '25']],
            });
            assert(lines.includes('qemu_arm64: start --io=libuv: exit 0 on SIGTERM'));
        });
}

function line_after(lines: readonly string[], prefix: string): string {
    const line = lines.find((entry) => entry.startsWith(prefix));
    assert(line !== undefined, `no line starting "${prefix}"`);
    return line.slice(prefix.length);
}
