// Crash-restart under load: the official client keeps createTransfers requests outstanding while
// the server is killed with SIGKILL several times and restarted on the same data file. Afterwards
// every acknowledged transfer exists, no request was applied twice (each result is `created`, a
// second application would say `exists`), and the balances equal the transfers that exist.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';

import {
    ServerProcess, data_file_path, format_data_file, load_start, port_free,
} from './server_process';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('crash: SIGKILL under load loses no acknowledged transfer and applies none twice',
    { timeout: 180_000 }, async () => {
        const file = data_file_path('crash');
        format_data_file(file);
        const port = await port_free();
        let server = await ServerProcess.start(file, port);
        const load = load_start(port, 6_000, 1, 300_000);
        try {
            for (let kill = 0; kill < 3; kill++) {
                await sleep(1_200);
                await server.kill();
                server = await ServerProcess.start(file, port);
                assert.match(server.stdout, /replayed to op \d+/);
            }
            const result = await load.done;
            const summary = JSON.parse(result.output.trim().split('\n').pop()!) as
                Record<string, unknown>;
            assert.equal(result.code, 0, result.output);
            assert.equal(summary.missing, 0);
            assert.equal(summary.errors, 0);
            assert.equal(summary.balanced, true);
            assert((summary.acknowledged as number) > 0);
            // The ledger survives one more restart unchanged (a clean stop, then a replay).
            assert.equal(await server.stop('SIGTERM'), 0, server.stderr);
            server = await ServerProcess.start(file, port);
            const again = await load_start(port, 0, 1, 0).done;
            assert.equal(again.code, 0, again.output);
            const balances = JSON.parse(again.output.trim()) as Record<string, unknown>;
            assert.equal(balances.debits_posted, summary.debits_posted);
            assert.equal(balances.credits_posted, summary.credits_posted);
        } finally {
            load.child.kill('SIGKILL');
            await server.stop('SIGTERM');
            fs.rmSync(file, { force: true });
        }
    });
