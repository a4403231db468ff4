// Issue 10: every limit gets an answer. A replica formatted small, `ringledger start`, and
// several clients at once — tigerbeetle-node 0.17.9 and ours, through test/limits_client.ts —
// sending create batches past accounts_max and transfers_max. Each client that does not fit gets
// an answer well within its timeout (the official client an eviction, ours ERR_LIMIT_REACHED
// naming the limit and its value), nothing of a refused batch is applied, every acknowledged
// batch is whole, the operator is told once per limit with the fix, and lookups go on.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { createClient } from '../lib/client/index';
import {
    ServerProcess, children_track, data_file_path, format_data_file, port_free, root,
} from './server_process';

const script = path.join(root, 'dist', 'test', 'limits_client.js');
/** No call may wait longer than this for its answer (the official client has no timeout). */
const answer_bound_ms = 10_000;

interface Outcome {
    acknowledged: number;
    first_id: string;
    next_id: string;
    slowest_ms: number;
    code: string | null;
    message: string | null;
    limit: string | null;
    limit_value: string | null;
}

function limits_client(which: 'official' | 'ringledger', port: number,
    kind: 'accounts' | 'transfers', first_id: bigint, batch_size: number,
    batches_max: number): Promise<Outcome> {
    return new Promise((resolve, reject) => {
        const child = children_track(child_process.spawn(process.execPath, [script, which,
            String(port), kind, String(first_id), String(batch_size), String(batches_max)],
        { stdio: ['ignore', 'pipe', 'pipe'] }));
        let output = '';
        let errors = '';
        child.stdout!.setEncoding('utf8');
        child.stderr!.setEncoding('utf8');
        child.stdout!.on('data', (chunk: string) => { output += chunk; });
        child.stderr!.on('data', (chunk: string) => { errors = (errors + chunk).slice(-4000); });
        // A client left waiting is the failure under test: kill it and say so.
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.once('exit', (code, signal) => {
            clearTimeout(timer);
            if (code !== 0) {
                reject(new Error(`${which} client: exit ${code} ${signal}\n${output}\n${errors}`));
            } else {
                resolve(JSON.parse(output.trim()) as Outcome);
            }
        });
    });
}

function assert_refused(outcome: Outcome, which: string, limit: string, value: number): void {
    assert.ok(outcome.slowest_ms < answer_bound_ms,
        `${which}: answered in ${outcome.slowest_ms} ms`);
    if (which === 'official') {
        assert.equal(outcome.code, 'ERR_CLIENT_EVICTED', JSON.stringify(outcome));
    } else {
        assert.equal(outcome.code, 'ERR_LIMIT_REACHED', JSON.stringify(outcome));
        assert.equal(outcome.limit, limit);
        assert.equal(outcome.limit_value, String(value));
        assert.match(outcome.message!, new RegExp(`${limit} \\(${value}\\)`));
    }
}

/** Ids [first, next) that exist, by batch: each batch must be all there or all absent. */
async function batches_present(client: ReturnType<typeof createClient>, kind: string,
    outcome: Outcome, batch_size: number): Promise<number> {
    const first = BigInt(outcome.first_id);
    const batches = Number((BigInt(outcome.next_id) - first) / BigInt(batch_size));
    let present = 0;
    for (let batch = 0; batch < batches; batch++) {
        const ids: bigint[] = [];
        for (let index = 0; index < batch_size; index++) {
            ids.push(first + BigInt(batch * batch_size + index));
        }
        const found = kind === 'accounts' ? await client.lookupAccounts(ids) :
            await client.lookupTransfers(ids);
        assert.ok(found.length === 0 || found.length === batch_size,
            `batch ${batch} partly applied: ${found.length} of ${batch_size}`);
        if (found.length === batch_size) present += 1;
    }
    return present;
}

test('limits: clients past accounts_max and transfers_max are answered, nothing partly applied',
    { timeout: 180_000 }, async () => {
        const file = data_file_path('limits');
        const accounts_max = 12;
        const transfers_max = 20_000;
        const capacity = [`--accounts-max=${accounts_max}`, `--transfers-max=${transfers_max}`];
        format_data_file(file, capacity);
        const port = await port_free();
        const server = await ServerProcess.start(file, port, capacity);
        const checker = createClient({ cluster_id: 0n, replica_addresses: [String(port)] });
        try {
            // accounts_max: 2 + 8 fit, the next 8 do not, for either client.
            const base = await limits_client('ringledger', port, 'accounts', 1n, 2, 1);
            assert.equal(base.acknowledged, 1);
            const fits = await limits_client('official', port, 'accounts', 100n, 8, 1);
            assert.equal(fits.acknowledged, 1);
            const accounts = await Promise.all([
                limits_client('official', port, 'accounts', 200n, 8, 1),
                limits_client('ringledger', port, 'accounts', 300n, 8, 1),
            ]);
            assert_refused(accounts[0], 'official', 'accounts_max', accounts_max);
            assert_refused(accounts[1], 'ringledger', 'accounts_max', accounts_max);
            assert.equal(await batches_present(checker, 'accounts', accounts[0], 8), 0);
            assert.equal(await batches_present(checker, 'accounts', accounts[1], 8), 0);

            // transfers_max: four clients at once, full batches; two batches fit in all.
            const batch_size = 8189;
            const runs = await Promise.all([
                limits_client('official', port, 'transfers', 1_000_000n, batch_size, 4),
                limits_client('official', port, 'transfers', 2_000_000n, batch_size, 4),
                limits_client('official', port, 'transfers', 3_000_000n, batch_size, 4),
                limits_client('ringledger', port, 'transfers', 4_000_000n, batch_size, 4),
            ]);
            let acknowledged = 0;
            for (const [index, run] of runs.entries()) {
                assert_refused(run, index < 3 ? 'official' : 'ringledger', 'transfers_max',
                    transfers_max);
                const present = await batches_present(checker, 'transfers', run, batch_size);
                assert.equal(present, run.acknowledged, 'exactly the acknowledged batches exist');
                acknowledged += run.acknowledged;
            }
            assert.equal(acknowledged, Math.floor(transfers_max / batch_size));
            // Lookups go on, and the balances are those of the acknowledged batches exactly.
            const [debit, credit] = await checker.lookupAccounts([1n, 2n]);
            assert.equal(debit!.debits_posted, BigInt(acknowledged * batch_size));
            assert.equal(credit!.credits_posted, BigInt(acknowledged * batch_size));
            // A batch that still fits is accepted after the refusals.
            const small = await limits_client('ringledger', port, 'transfers', 5_000_000n, 10, 1);
            assert.equal(small.acknowledged, 1);

            // The operator was told once per limit, with the fix.
            for (const limit of ['accounts_max=12', 'transfers_max=20000']) {
                const lines = server.stdout.split('\n')
                    .filter((line) => line.includes(`capacity limit reached: ${limit}`));
                assert.equal(lines.length, 1, server.stdout);
                assert.match(lines[0]!, /ringledger format/);
            }
        } finally {
            checker.destroy();
            assert.equal(await server.stop('SIGTERM'), 0, server.stderr);
            fs.rmSync(file, { force: true });
        }
    });
