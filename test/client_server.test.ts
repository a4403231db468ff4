// Our client against a real replica (`ringledger format` + `ringledger start` as a child):
// tigerbeetle-node 0.17.9's own test file run with our client in place of the package, and one
// seeded random workload through both clients whose results must be identical.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as tigerbeetle from 'tigerbeetle-node';

import { replica_spawn } from '../lib/cli/benchmark';
import type { ReplicaChild } from '../lib/cli/benchmark';
import { AccountFilterFlags, AccountFlags, createClient, TransferFlags } from '../lib/client/index';
import type { Account, AccountFilter, QueryFilter, Transfer } from '../lib/client/index';
import { Prng } from '../lib/prng';
import { test_seed } from '../lib/testing/seed';

const root = path.resolve(__dirname, '..', '..');
const scratch = path.join(root, '.test-data');

let replica: ReplicaChild;

before(async () => {
    replica = await replica_spawn({ parent_directory: scratch, accounts_max: 10_000,
        transfers_max: 100_000 });
});

after(async () => {
    await replica?.stop();
});

describe('client against ringledger start', () => {
    test('tigerbeetle-node dist/test.js passes with our client in place of the package',
        async () => {
            // test.js loads the client with require('.'): give it a directory whose index is
            // ours. The test file is read from the installed package, not copied into the tree.
            const directory = fs.mkdtempSync(path.join(scratch, 'official-test-'));
            try {
                const package_dist = path.join(root, 'node_modules', 'tigerbeetle-node', 'dist');
                fs.copyFileSync(path.join(package_dist, 'test.js'),
                    path.join(directory, 'test.js'));
                const ours = path.join(root, 'dist', 'lib', 'client', 'index.js');
                fs.writeFileSync(path.join(directory, 'index.js'),
                    `module.exports = require(${JSON.stringify(ours)});\n`);
                const result = child_process.spawnSync(process.execPath,
                    [path.join(directory, 'test.js')], {
                        env: { ...process.env, TB_ADDRESS: replica.address },
                        encoding: 'utf8', timeout: 120_000,
                    });
                const passed = result.stdout.split('\n').filter((line) =>
                    line.endsWith(': PASSED'));
                assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
                assert.equal(passed.length, 27, result.stdout);
            } finally {
                fs.rmSync(directory, { recursive: true, force: true });
            }
        });

    test('a random workload gives identical results through both clients', async () => {
        const ours = createClient({ cluster_id: 0n, replica_addresses: [replica.address] });
        const theirs = tigerbeetle.createClient({ cluster_id: 0n,
            replica_addresses: [replica.address] });
        try {
            // A fixed seed keeps the coverage bounds below deterministic; RINGLEDGER_SEED explores.
            const seed = test_seed(20261201);
            const results_ours = await workload_run(ours, seed, namespace_ours);
            const results_theirs = await workload_run(
                theirs as unknown as WorkloadClient, seed, namespace_theirs);
            assert.ok(results_ours.length > 200);
            const normal_ours = normalize(results_ours, namespace_ours);
            const normal_theirs = normalize(results_theirs, namespace_theirs);
            for (let index = 0; index < normal_ours.length; index++) {
                assert.deepStrictEqual(normal_ours[index], normal_theirs[index],
                    `seed ${seed}, call ${index}`);
            }
            assert.equal(normal_ours.length, normal_theirs.length);
            // The workload reaches far: accounts and transfers created, errors, found objects.
            const text = JSON.stringify(normal_ours);
            const created = text.split('"status":4294967295').length - 1;
            const failed = (text.match(/"status":(\d{1,2}),/g) ?? []).length;
            const found = (text.match(/"debit_account_id"/g) ?? []).length;
            assert.ok(created > 50 && failed > 50 && found > 20,
                `created ${created}, failed ${failed}, transfers returned ${found}`);
        } finally {
            ours.destroy();
            theirs.destroy();
        }
    });
});

describe('ringledger demo', () => {
    test('formats, starts, runs, prints a balanced summary, stops and cleans up', async () => {
        const main_path = path.join(root, 'dist', 'lib', 'cli', 'main.js');
        const temporary = fs.mkdtempSync(path.join(scratch, 'demo-tmp-'));
        try {
            const result = await new Promise<{ code: number, stdout: string, stderr: string }>(
                (resolve) => child_process.execFile(process.execPath,
                    [main_path, 'demo', '--seconds=1', '--accounts=100'],
                    { env: { ...process.env, TMPDIR: temporary }, timeout: 120_000 },
                    (error, stdout, stderr) => resolve({
                        code: error === null ? 0 : Number(error.code), stdout, stderr })));
            assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
            // Each figure is followed by what it means (the demo explains itself).
            assert.match(result.stdout, /^ {2}accounts {13}100 \(/m);
            assert.match(result.stdout, /^ {2}transfers {12}[\d,]+ in [\d.]+ s, /m);
            assert.match(result.stdout, /^ {2}throughput {11}[\d,]+ tx\/s \(/m);
            assert.match(result.stdout, /^ {2}balance check .*: ok$/m);
            assert.match(result.stdout, /temporary data file removed/);
            assert.deepEqual(fs.readdirSync(temporary), [], 'the data directory is removed');
        } finally {
            fs.rmSync(temporary, { recursive: true, force: true });
        }
    });
});

// The workload: both runs issue the same calls, each in its own namespace (ids offset by
// `id_base`, ledgers by `ledger_base`) so that they share the server without meeting. Queries
// always filter by one of the namespace's ledgers.
interface Namespace {
    id_base: bigint;
    ledger_base: number;
}
const namespace_ours: Namespace = { id_base: 1n << 100n, ledger_base: 1000 };
const namespace_theirs: Namespace = { id_base: 2n << 100n, ledger_base: 2000 };

type WorkloadClient = Pick<ReturnType<typeof createClient>, 'createAccounts' | 'createTransfers' |
    'lookupAccounts' | 'lookupTransfers' | 'getAccountTransfers' | 'getAccountBalances' |
    'queryAccounts' | 'queryTransfers'>;

async function workload_run(
    client: WorkloadClient, seed: number, namespace: Namespace,
): Promise<unknown[]> {
    const prng = new Prng(seed);
    const results: unknown[] = [];
    const id = (local: number): bigint => local === 0 ? 0n : namespace.id_base + BigInt(local);
    // An account's ledger follows from its id's parity, so transfers can aim at matching pairs.
    const ledger = (local: number): number => namespace.ledger_base + 1 + (local % 2);
    for (let step = 0; step < 150; step++) {
        const kind = step < 3 ? 0 : prng.int(8);
        // 1..3 calls of one operation at once, so that the clients batch them.
        const calls: Promise<unknown[]>[] = [];
        const concurrent = 1 + prng.int(3);
        for (let call = 0; call < concurrent; call++) {
            calls.push(workload_call(client, kind, prng, id, ledger));
        }
        for (const call of calls) results.push(await call.catch((error: Error) => error.message));
    }
    return results;
}

function workload_call(
    client: WorkloadClient, kind: number, prng: Prng, id: (local: number) => bigint,
    ledger: (local: number) => number,
): Promise<unknown[]> {
    const small = (): number => prng.int(40);
    switch (kind) {
        case 0: return client.createAccounts(Array.from({ length: 1 + prng.int(8) }, () => {
            const local = small();
            return random_account(prng, id(local), ledger(local));
        }));
        case 1:
        case 2: return client.createTransfers(Array.from({ length: prng.int(12) }, () =>
            random_transfer(prng, id, ledger)));
        case 3: return client.lookupAccounts(Array.from({ length: prng.int(6) }, () =>
            id(small())));
        case 4: return client.lookupTransfers(Array.from({ length: prng.int(6) }, () =>
            id(1000 + prng.int(200))));
        case 5: {
            const filter = random_account_filter(prng, id(small()));
            return prng.chance(1, 2) ? client.getAccountTransfers(filter) :
                client.getAccountBalances(filter);
        }
        default: {
            const filter = random_query_filter(prng, ledger(prng.int(2)));
            return prng.chance(1, 2) ? client.queryAccounts(filter) :
                client.queryTransfers(filter);
        }
    }
}

function random_account(prng: Prng, id: bigint, ledger: number): Account {
    const flag_choices = [0, 0, 0, AccountFlags.history, AccountFlags.linked,
        AccountFlags.debits_must_not_exceed_credits, AccountFlags.credits_must_not_exceed_debits,
        AccountFlags.debits_must_not_exceed_credits | AccountFlags.credits_must_not_exceed_debits];
    return {
        id, debits_pending: 0n, debits_posted: 0n, credits_pending: 0n, credits_posted: 0n,
        user_data_128: BigInt(prng.int(3)), user_data_64: BigInt(prng.int(3)),
        user_data_32: prng.int(3), reserved: 0, ledger: prng.chance(1, 30) ? 0 : ledger,
        code: prng.chance(1, 30) ? 0 : 1 + prng.int(3), flags: prng.pick(flag_choices),
        timestamp: prng.chance(1, 40) ? 1n : 0n,
    };
}

function random_transfer(
    prng: Prng, id: (local: number) => bigint, ledger: (local: number) => number,
): Transfer {
    const flag_choices = [0, 0, 0, 0, TransferFlags.linked, TransferFlags.pending,
        TransferFlags.pending, TransferFlags.post_pending_transfer,
        TransferFlags.void_pending_transfer, TransferFlags.balancing_debit,
        TransferFlags.balancing_credit, TransferFlags.closing_debit | TransferFlags.pending];
    const flags = prng.pick(flag_choices);
    const two_phase = (flags & (TransferFlags.post_pending_transfer |
        TransferFlags.void_pending_transfer)) !== 0;
    // Mostly two accounts of one ledger (same parity), sometimes anything.
    const debit = prng.int(40);
    const credit = prng.chance(4, 5) ? (debit + 2 * (1 + prng.int(19))) % 40 : prng.int(40);
    return {
        id: id(1000 + prng.int(200)), debit_account_id: id(debit), credit_account_id: id(credit),
        amount: BigInt(prng.int(50)), pending_id: two_phase ? id(1000 + prng.int(200)) : 0n,
        user_data_128: BigInt(prng.int(3)), user_data_64: BigInt(prng.int(3)),
        user_data_32: prng.int(3), timeout: 0,
        ledger: prng.chance(1, 20) ? ledger(debit + 1) : ledger(debit), code: 1 + prng.int(2),
        flags, timestamp: 0n,
    };
}

function random_account_filter(prng: Prng, account_id: bigint): AccountFilter {
    return {
        account_id, user_data_128: 0n, user_data_64: 0n, user_data_32: 0,
        code: prng.chance(1, 4) ? 1 : 0, timestamp_min: 0n, timestamp_max: 0n,
        limit: prng.int(20), flags: prng.int(8) & (AccountFilterFlags.debits |
            AccountFilterFlags.credits | AccountFilterFlags.reversed),
    };
}

function random_query_filter(prng: Prng, ledger: number): QueryFilter {
    return {
        user_data_128: prng.chance(1, 3) ? BigInt(prng.int(3)) : 0n,
        user_data_64: prng.chance(1, 3) ? BigInt(prng.int(3)) : 0n,
        user_data_32: prng.chance(1, 3) ? prng.int(3) : 0, ledger,
        code: prng.chance(1, 3) ? 1 + prng.int(2) : 0, timestamp_min: 0n, timestamp_max: 0n,
        limit: prng.int(20), flags: prng.int(2),
    };
}

const id_fields = ['id', 'debit_account_id', 'credit_account_id', 'pending_id'];

/**
 * Makes two runs comparable: ids lose their namespace offset, ledgers their base, and every
 * timestamp becomes its rank among the run's timestamps (the server's clock differs between the
 * runs, the order of events does not).
 */
function normalize(results: unknown[], namespace: Namespace): unknown[] {
    const timestamps = new Set<bigint>();
    visit(results, (key, value) => {
        if (key === 'timestamp' && typeof value === 'bigint') timestamps.add(value);
    });
    const sorted = [...timestamps].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const rank = new Map(sorted.map((value, index) => [value, index]));
    return JSON.parse(JSON.stringify(results, (key: string, value: unknown) => {
        if (typeof value === 'bigint') {
            if (key === 'timestamp') return `t${rank.get(value)}`;
            if (id_fields.includes(key) && value >= namespace.id_base) {
                return `id${value - namespace.id_base}`;
            }
            return value.toString();
        }
        if (key === 'ledger' && typeof value === 'number' && value > namespace.ledger_base) {
            return value - namespace.ledger_base;
        }
        return value;
    })) as unknown[];
}

function visit(value: unknown, on: (key: string, value: unknown) => void): void {
    if (Array.isArray(value)) {
        for (const item of value) visit(item, on);
    } else if (value !== null && typeof value === 'object') {
        for (const [key, item] of Object.entries(value)) {
            on(key, item);
            visit(item, on);
        }
    }
}
