// A client at a capacity limit, run as a child process by test/server_limits.test.ts (tests
// only). The same code drives tigerbeetle-node 0.17.9 and our client, which share one API.
// Usage: node limits_client.js <official|ringledger> <port> <accounts|transfers> <first_id>
// <batch_size> <batches_max>. It sends up to batches_max create batches of batch_size unique ids
// from first_id (transfers move 1 from account 1 to account 2) and stops at the first call that
// fails. Every result of an accepted batch must be `created`. Prints one JSON line: batches
// acknowledged, ids sent, the error's code, message, limit and limit_value, and the slowest call
// in ms (the test checks that no call waited past a bound).
import assert from 'node:assert/strict';

interface ClientLike {
    createAccounts(batch: object[]): Promise<Array<{ status: number }>>;
    createTransfers(batch: object[]): Promise<Array<{ status: number }>>;
}

const created = 0xffffffff;

type Failure = Error & { code?: string; limit?: string; limit_value?: bigint };

function account(id: bigint): object {
    return {
        id, debits_pending: 0n, debits_posted: 0n, credits_pending: 0n, credits_posted: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, reserved: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n,
    };
}

function transfer(id: bigint): object {
    return {
        id, debit_account_id: 1n, credit_account_id: 2n, amount: 1n, pending_id: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, timeout: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n,
    };
}

async function main(): Promise<void> {
    const [which, port, kind, first, size, count] = process.argv.slice(2);
    assert(which === 'official' || which === 'ringledger');
    assert(kind === 'accounts' || kind === 'transfers');
    const batch_size = Number(size);
    const batches_max = Number(count);
    assert(Number.isSafeInteger(batch_size) && batch_size > 0 && batch_size <= 8189);
    assert(Number.isSafeInteger(batches_max) && batches_max > 0);
    const library = (which === 'official' ? require('tigerbeetle-node') :
        require('../lib/client/index')) as { createClient(args: object): ClientLike };
    const client = library.createClient({ cluster_id: 0n, replica_addresses: [port!] });
    let next_id = BigInt(first!);
    let acknowledged = 0;
    let slowest_ms = 0;
    let failure = null as Failure | null;
    for (let batch = 0; batch < batches_max && failure === null; batch++) {
        const events: object[] = [];
        for (let index = 0; index < batch_size; index++) {
            events.push(kind === 'accounts' ? account(next_id) : transfer(next_id));
            next_id += 1n;
        }
        const started_ms = Date.now();
        try {
            const results: Array<{ status: number }> = kind === 'accounts' ?
                await client.createAccounts(events) : await client.createTransfers(events);
            assert.equal(results.length, batch_size);
            for (const result of results) assert.equal(result.status, created);
            acknowledged += 1;
        } catch (error) {
            failure = error as Failure;
        }
        slowest_ms = Math.max(slowest_ms, Date.now() - started_ms);
    }
    process.stdout.write(`${JSON.stringify({
        acknowledged, first_id: first, next_id: String(next_id), slowest_ms,
        code: failure?.code ?? null, message: failure?.message ?? null,
        limit: failure?.limit ?? null, limit_value: failure?.limit_value?.toString() ?? null,
    })}\n`);
    // tigerbeetle-node 0.17.9 panics in destroy() after an eviction (docs/wire-protocol.md §9):
    // exit without it.
    process.exit(0);
}

main().catch((error: unknown) => {
    process.stderr.write(`${String((error as Error)?.stack ?? error)}\n`);
    process.exit(1);
});
