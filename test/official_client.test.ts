// The acceptance test of issue 6: the official tigerbeetle-node@0.17.9 client's own test file
// (dist/test.js, 27 tests) passes against `ringledger start`, on both engines, and its
// dist/benchmark.js completes with correct balances.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';

import {
    ServerProcess, data_file_path, format_data_file, official_client_run, port_free,
} from './server_process';

const tests_expected = 27;

/** The per-test lines of dist/test.js: "<name>: PASSED" or "<name>: FAILED". */
function results(output: string): { passed: string[]; failed: string[] } {
    const lines = output.split('\n');
    return {
        passed: lines.filter((line) => line.endsWith(': PASSED')),
        failed: lines.filter((line) => line.endsWith(': FAILED')),
    };
}

/** Runs one official script against a fresh server (its ids collide with the other's). */
async function official_run(io: 'io_uring' | 'libuv', script: 'test.js' | 'benchmark.js'):
    Promise<void> {
    const file = data_file_path(`official-${io}`);
    format_data_file(file);
    const port = await port_free();
    const server = await ServerProcess.start(file, port, [`--io=${io}`]);
    try {
        const run = await official_client_run(script, port, 120_000);
        if (script === 'test.js') {
            const { passed, failed } = results(run.output);
            assert.deepEqual(failed, [], run.output);
            assert.equal(passed.length, tests_expected, run.output);
            assert.match(run.output, /Time taken \(s\):/);
        } else {
            // benchmark.js exits 0 even when an assertion fails, so its output is checked: the
            // final assertions (balances equal the transfers sent) print nothing on success.
            assert.match(run.output, /transfers per second: \d+/, run.output);
            assert.doesNotMatch(run.output, /Error|assert/i, run.output);
        }
        assert.equal(run.code, 0, run.output);
    } finally {
        assert.equal(await server.stop('SIGTERM'), 0, server.stdout + server.stderr);
        fs.rmSync(file, { force: true });
    }
    assert.match(server.stdout, /SIGTERM: stopping/);
    assert.match(server.stdout, /stopped at op \d+/);
    assert.equal(server.stderr, '');
}

test('official client: dist/test.js passes 27/27 (io_uring engine)', { timeout: 300_000 },
    async () => {
        await official_run('io_uring', 'test.js');
    });

test('official client: dist/test.js passes 27/27 (libuv engine)', { timeout: 300_000 },
    async () => {
        await official_run('libuv', 'test.js');
    });

test('official client: dist/benchmark.js completes with exact balances', { timeout: 300_000 },
    async () => {
        await official_run('io_uring', 'benchmark.js');
    });
