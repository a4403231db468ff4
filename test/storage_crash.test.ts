// Crash-restart at random moments, many times, against the real `ringledger start` on the
// io_uring engine (O_DIRECT | O_DSYNC data file, small ledger capacities so that format and start
// are quick). Four official tigerbeetle-node clients in this process each keep one
// createTransfers request outstanding (seeded random transfers among 16 accounts, some invalid);
// the server is SIGKILLed after a random delay, or just as its op count reaches the next
// checkpoint trigger (so that some kills land while a checkpoint is being written), and
// restarted on the same file. At each kill, each client's request in flight and the totals of
// acknowledged requests are recorded; the restarted server reports, before it serves anyone,
// the op it replayed to and how many transfers exist. The test then checks:
//
// - a prefix: op head and transfer count equal "everything acknowledged + the requests of some
//   subset of the clients that had one in flight" (nothing acknowledged lost, nothing applied
//   that was never sent, no partial batch);
// - exactly once: every request's results, including those retried across the crash, equal the
//   reference model's results for that batch executed once (a second execution would say
//   `exists`);
// - the state: at intervals and at the end, every account and every transfer acknowledged since
//   the last check equal the reference model's (lib/testing/ledger_model.ts);
// - progress across checkpoints and WAL wraps (op head and checkpoint from the startup log).
//
// CI runs a short version; RINGLEDGER_TEST_LONG=1 runs 300 kills and prints the figures.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';

import { test_seed } from '../lib/testing/seed';
import { createClient } from 'tigerbeetle-node';
import type {
    Account as ClientAccount, Client, Transfer as ClientTransfer,
} from 'tigerbeetle-node';

import { checkpoint_interval_ops } from '../lib/vsr/checkpoint_schedule';
import { config_production } from '../lib/storage/zones';
import { LedgerModel, Op, transfer_encode } from '../lib/testing/ledger_model';
import type { Transfer } from '../lib/testing/ledger_model';
import { Prng } from '../lib/prng';
import { pipeline_prepare_queue_max } from '../lib/vsr/pipeline';
import { ServerProcess, data_file_path, format_data_file, port_free } from './server_process';

const long = process.env.RINGLEDGER_TEST_LONG === '1';
const kills_total = long ? 300 : 20;
const seed = test_seed(7);
const clients_count = 4;
const accounts_count = 16;
const capacity = ['--clients-max=4', '--accounts-max=64', '--transfers-max=400000'];
const interval_ops = checkpoint_interval_ops(config_production.slot_count,
    pipeline_prepare_queue_max);
/** One kill in this many waits for the next checkpoint trigger. */
const checkpoint_kill_every = 4;
const verify_every = long ? 25 : 10;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Pending {
    transfers: Transfer[];
}

/** At the kill: totals acknowledged, and each client's request in flight. */
interface Snapshot {
    ops: number;
    transfers: number;
    in_flight: Array<Pending | null>;
}

/** The test's view of everything sent and acknowledged, and the model of what must exist. */
class Books {
    readonly model = new LedgerModel();
    private timestamp = 1_000_000_000n;
    /** Requests acknowledged (each one op), and transfers in them. */
    ops_acknowledged = 0;
    transfers_acknowledged = 0;
    /** Per client: the request in flight, or null. */
    readonly in_flight: Array<Pending | null> = new Array(clients_count).fill(null);
    /** Transfers acknowledged since the last full check. */
    unchecked: Transfer[] = [];

    /** Executes a batch on the model once (at its acknowledgement); returns the statuses. */
    execute(transfers: Transfer[]): number[] {
        const input = new Uint8Array(transfers.length * 128);
        transfers.forEach((t, index) => transfer_encode(t, input, index * 128));
        this.timestamp += 1_000_000n;
        const reply = this.model.execute(Op.create_transfers, this.timestamp, input);
        const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
        return transfers.map((_, index) => view.getUint32(index * 16 + 8, true));
    }
}

function transfer(prng: Prng, id: bigint): Transfer {
    const debit = BigInt(1 + prng.int(accounts_count));
    // About one in twenty is invalid (same account on both sides): refused, state unchanged.
    const credit = prng.chance(1, 20) ? debit
        : BigInt(1 + ((Number(debit) + prng.int(accounts_count - 1)) % accounts_count));
    return {
        id, debit_account_id: debit, credit_account_id: credit, amount: BigInt(1 + prng.int(999)),
        pending_id: 0n, user_data_128: BigInt(prng.u32()), user_data_64: 0n, user_data_32: 0,
        timeout: 0, ledger: 1, code: 1 + prng.int(9), flags: 0, timestamp: 0n,
    };
}

/** The running server plus what its startup log said. */
interface Started {
    server: ServerProcess;
    op: number;
    checkpoint: number;
    transfers: number;
}

async function start(file: string, port: number): Promise<Started> {
    const server = await ServerProcess.start(file, port, capacity);
    const opened = new RegExp('opened .*?: replica 0 of 1, view \\d+, op (\\d+), checkpoint ' +
        '(\\d+), \\d+ client session\\(s\\), (\\d+) account\\(s\\), (\\d+) transfer\\(s\\)')
        .exec(server.stdout);
    assert(opened !== null, server.stdout);
    return {
        server, op: Number(opened[1]), checkpoint: Number(opened[2]),
        transfers: Number(opened[4]),
    };
}

/**
 * The recovered op head and transfer count must be those of all acknowledged requests plus the
 * in-flight requests of some subset of the clients (each all or nothing). Returns the subset.
 */
function prefix_check(snapshot: Snapshot, started: Started, ops_base: number): number {
    // Refused events (same account on both sides) create nothing: count the valid ones.
    const sizes = snapshot.in_flight.map((p) => (p === null ? -1
        : p.transfers.filter((t) => t.debit_account_id !== t.credit_account_id).length));
    for (let subset = 0; subset < 1 << clients_count; subset++) {
        let ops = 0;
        let transfers = 0;
        for (let client = 0; client < clients_count; client++) {
            if ((subset & (1 << client)) === 0) continue;
            ops += sizes[client] === -1 ? Infinity : 1;
            transfers += sizes[client]!;
        }
        if (started.op === ops_base + snapshot.ops + ops &&
            started.transfers === snapshot.transfers + transfers) return subset;
    }
    assert.fail(`recovered op ${started.op} with ${started.transfers} transfers is no prefix: ` +
        `acknowledged ${snapshot.ops} op(s) after op ${ops_base} with ${snapshot.transfers} ` +
        `transfer(s), in flight ${JSON.stringify(sizes)}`);
}

/** Every account and every transfer acknowledged since the last check equal the model's. */
async function state_check(client: Client, books: Books): Promise<number> {
    let ops = 0;
    const ids = Array.from({ length: accounts_count }, (_, index) => BigInt(index + 1));
    const accounts = await client.lookupAccounts(ids);
    ops += 1;
    assert.equal(accounts.length, accounts_count);
    for (const account of accounts) {
        const expected = books.model.accounts.get(account.id)!;
        assert.equal(account.debits_posted, expected.debits_posted, `account ${account.id}`);
        assert.equal(account.credits_posted, expected.credits_posted, `account ${account.id}`);
        assert.equal(account.debits_pending + account.credits_pending, 0n);
    }
    for (let start = 0; start < books.unchecked.length; start += 8000) {
        const chunk = books.unchecked.slice(start, start + 8000);
        const found = await client.lookupTransfers(chunk.map((t) => t.id));
        ops += 1;
        const by_id = new Map(found.map((t) => [t.id, t]));
        for (const sent of chunk) {
            const expected = books.model.transfers.get(sent.id);
            const actual = by_id.get(sent.id);
            assert.equal(actual === undefined, expected === undefined, `transfer ${sent.id}`);
            if (actual === undefined || expected === undefined) continue;
            transfer_equal(actual, expected);
        }
    }
    books.unchecked = [];
    return ops;
}

function transfer_equal(actual: ClientTransfer, expected: Transfer): void {
    assert.equal(actual.debit_account_id, expected.debit_account_id);
    assert.equal(actual.credit_account_id, expected.credit_account_id);
    assert.equal(actual.amount, expected.amount);
    assert.equal(actual.user_data_128, expected.user_data_128);
    assert.equal(actual.code, expected.code);
    assert.equal(actual.flags, expected.flags);
    assert(actual.timestamp > 0n);
}

function account_new(id: bigint): ClientAccount {
    return {
        id, debits_pending: 0n, debits_posted: 0n, credits_pending: 0n, credits_posted: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, reserved: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n,
    };
}

test(`storage crash: ${kills_total} SIGKILLs at random moments and at checkpoints, state is ` +
    'always a prefix containing everything acknowledged', { timeout: long ? 3_600_000 : 120_000 },
async () => {
    const time_start = Date.now();
    const prng = new Prng(seed);
    const file = data_file_path('storage-crash');
    format_data_file(file, capacity);
    const port = await port_free();
    let started: Started | null = null;
    const clients: Client[] = [];
    const books = new Books();
    let failure: Error | null = null;
    let paused = false;
    let stopping = false;
    const ids_next = new Array<bigint>(clients_count).fill(0n).map((_, c) =>
        BigInt(c + 1) << 40n);
    try {
        started = await start(file, port);
        for (let c = 0; c < clients_count; c++) {
            clients.push(createClient({ cluster_id: 0n, replica_addresses: [String(port)] }));
        }
        // Register every client and create the accounts before the first kill.
        const account_ids = Array.from({ length: accounts_count }, (_, i) => BigInt(i + 1));
        const created = await clients[0]!.createAccounts(account_ids.map(account_new));
        assert(created.every((r) => r.status === 0xffffffff));
        for (let c = 1; c < clients_count; c++) await clients[c]!.lookupAccounts([1n]);
        for (const id of account_ids) {
            books.model.accounts.set(id, {
                id, debits_pending: 0n, debits_posted: 0n, credits_pending: 0n,
                credits_posted: 0n, user_data_128: 0n, user_data_64: 0n, user_data_32: 0,
                reserved: 0, ledger: 1, code: 1, flags: 0, timestamp: 1n,
            });
        }
        // Ops so far: a register per client, create_accounts, one lookup per other client.
        let ops_base = clients_count + 1 + (clients_count - 1);
        const worker = async (c: number): Promise<void> => {
            const own = new Prng(seed * 16 + c + 1);
            while (!stopping) {
                if (paused) {
                    await sleep(5);
                    continue;
                }
                const batch: Transfer[] = [];
                const size = 1 + own.int(8);
                for (let i = 0; i < size; i++) batch.push(transfer(own, ids_next[c]!++));
                books.in_flight[c] = { transfers: batch };
                const results = await clients[c]!.createTransfers(batch);
                books.in_flight[c] = null;
                const expected = books.execute(batch);
                assert.deepEqual(results.map((r) => r.status), expected,
                    'results of a batch executed exactly once');
                books.ops_acknowledged += 1;
                for (const t of batch) {
                    if (t.debit_account_id === t.credit_account_id) continue;
                    books.transfers_acknowledged += 1;
                    books.unchecked.push(t);
                }
            }
        };
        const workers = clients.map((_, c) => worker(c).catch((error: Error) => {
            failure = error;
        }));
        let kills_at_checkpoint = 0;
        let kills_during_checkpoint = 0;
        let prefixes_with_unacknowledged = 0;
        let checkpoints_seen = started.checkpoint;
        for (let kill = 0; kill < kills_total && failure === null; kill++) {
            // Aim: a random moment, or the checkpoint trigger (its commit starts the checkpoint).
            const trigger = started.checkpoint + interval_ops;
            const op_at = (): number => ops_base + books.ops_acknowledged;
            if (kill % checkpoint_kill_every === checkpoint_kill_every - 1) {
                kills_at_checkpoint += 1;
                // The trigger's reply goes out as its checkpoint starts: kill around then.
                const target = trigger - 1 + prng.int(3);
                const deadline = Date.now() + 20_000;
                while (op_at() < target && Date.now() < deadline && failure === null) {
                    await sleep(1);
                }
                await sleep(prng.int(4));
            } else {
                await sleep(20 + prng.int(400));
            }
            const snapshot: Snapshot = {
                ops: books.ops_acknowledged, transfers: books.transfers_acknowledged,
                in_flight: books.in_flight.slice(),
            };
            await started.server.kill();
            started = await start(file, port);
            if (process.env.RINGLEDGER_TEST_VERBOSE === '1') {
                process.stderr.write(`kill ${kill}: op ${started.op} checkpoint ` +
                    `${started.checkpoint} acknowledged ${snapshot.ops}\n`);
            }
            const subset = prefix_check(snapshot, started, ops_base);
            if (subset !== 0) prefixes_with_unacknowledged += 1;
            if (started.op >= trigger && started.checkpoint < trigger) kills_during_checkpoint += 1;
            checkpoints_seen = Math.max(checkpoints_seen, started.checkpoint);
            if ((kill + 1) % verify_every === 0 || kill + 1 === kills_total) {
                paused = true;
                while (books.in_flight.some((p) => p !== null) && failure === null) {
                    await sleep(2);
                }
                if (failure !== null) break;
                ops_base += await state_check(clients[0]!, books);
                paused = false;
            }
        }
        stopping = true;
        await Promise.all(workers);
        if (failure !== null) throw failure;
        ops_base += await state_check(clients[0]!, books);
        const head = ops_base + books.ops_acknowledged;
        const figures = {
            kills: kills_total, kills_aimed_at_checkpoint: kills_at_checkpoint,
            kills_during_checkpoint, prefixes_with_unacknowledged_ops: prefixes_with_unacknowledged,
            op_head: head, checkpoint: checkpoints_seen,
            checkpoints_crossed: Math.floor(checkpoints_seen / interval_ops),
            wal_wraps: Math.floor(head / config_production.slot_count),
            transfers: books.transfers_acknowledged, seconds: (Date.now() - time_start) / 1000,
        };
        process.stdout.write(`# storage crash: ${JSON.stringify(figures)}\n`);
        assert(figures.checkpoints_crossed >= (long ? 20 : 2), JSON.stringify(figures));
        assert(figures.wal_wraps >= (long ? 20 : 2), JSON.stringify(figures));
        // The server stops cleanly and reopens at the same head.
        assert.equal(await started.server.stop('SIGTERM'), 0, started.server.stderr);
        started = await start(file, port);
        assert.equal(started.op, head);
        assert.equal(started.transfers, books.transfers_acknowledged);
    } finally {
        stopping = true;
        for (const client of clients) client.destroy();
        if (started !== null) await started.server.stop('SIGKILL');
        fs.rmSync(file, { force: true });
        fs.rmSync(`${file}.lock`, { force: true });
    }
});
