// A load generator on the official tigerbeetle-node@0.17.9 client, run as a child process by the
// crash and bad-client tests (tests only). Usage: node official_load.js <port> <duration_ms>
// <accounts_base> <transfers_max>. It creates two accounts, then until duration_ms has passed or
// transfers_max transfers were issued (whichever comes first, so a faster machine never runs past
// the capacity the test formatted), pausing pause_ms (optional 5th argument) after each batch,
// keeps several createTransfers
// requests of unique ids outstanding (the client merges them into multi-batch requests), each
// moving amount 1 from the first account to the second. Every result must be `created`: a
// request applied twice would answer `exists`. Afterwards it waits for all outstanding requests,
// then checks: every acknowledged transfer exists, and both balances equal the number of
// transfers that exist (so none was applied twice or lost). Prints one JSON line and exits 0
// when all holds. With duration 0 it only reads the two existing accounts' balances back.
import assert from 'node:assert/strict';

import { CreateTransferStatus, createClient } from 'tigerbeetle-node';
import type { Transfer } from 'tigerbeetle-node';

const batch_size = 100;
const outstanding_max = 4;

function transfer(id: bigint, debit: bigint, credit: bigint): Transfer {
    return {
        id, debit_account_id: debit, credit_account_id: credit, amount: 1n, pending_id: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, timeout: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n,
    };
}

async function main(): Promise<void> {
    const port = process.argv[2]!;
    const duration_ms = Number(process.argv[3]);
    const base = BigInt(process.argv[4] ?? '1');
    const transfers_max = Number(process.argv[5] ?? '0');
    const pause_ms = Number(process.argv[6] ?? '0');
    assert(Number.isSafeInteger(transfers_max) && transfers_max >= 0);
    const debit = base;
    const credit = base + 1n;
    const client = createClient({ cluster_id: 0n, replica_addresses: [port] });
    const account = {
        debits_pending: 0n, debits_posted: 0n, credits_pending: 0n, credits_posted: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, reserved: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n,
    };
    const created = await client.createAccounts([{ ...account, id: debit },
        { ...account, id: credit }]);
    const exists = 21;
    for (const result of created) {
        assert.equal(result.status, duration_ms === 0 ? exists : 0xffffffff);
    }
    const acknowledged: bigint[] = [];
    const first_id = base * 1_000_000_000n;
    let next_id = first_id;
    let errors = 0;
    const deadline = Date.now() + duration_ms;
    const worker = async (): Promise<void> => {
        while (Date.now() < deadline && Number(next_id - first_id) + batch_size <= transfers_max) {
            const batch: Transfer[] = [];
            for (let i = 0; i < batch_size; i++) batch.push(transfer(next_id++, debit, credit));
            const results = await client.createTransfers(batch);
            for (const result of results) {
                if (result.status !== CreateTransferStatus.created) errors += 1;
            }
            for (const item of batch) acknowledged.push(item.id);
            if (pause_ms > 0) await new Promise((resolve) => setTimeout(resolve, pause_ms));
        }
    };
    await Promise.all(Array.from({ length: outstanding_max }, worker));
    const issued = Number(next_id - first_id);
    let existing = 0;
    const found = new Set<bigint>();
    for (let start = first_id; start < next_id; start += 8000n) {
        const ids: bigint[] = [];
        for (let id = start; id < next_id && id < start + 8000n; id++) ids.push(id);
        for (const item of await client.lookupTransfers(ids)) {
            found.add(item.id);
            existing += 1;
        }
    }
    const missing = acknowledged.filter((id) => !found.has(id)).length;
    const [a, b] = await client.lookupAccounts([debit, credit]);
    const summary = {
        issued, acknowledged: acknowledged.length, existing, missing, errors,
        debits_posted: String(a!.debits_posted), credits_posted: String(b!.credits_posted),
        balanced: a!.debits_posted === BigInt(existing) && b!.credits_posted === BigInt(existing),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    client.destroy();
    const ok = duration_ms === 0 ? errors === 0
        : missing === 0 && errors === 0 && summary.balanced && acknowledged.length > 0;
    process.exitCode = ok ? 0 : 1;
}

main().catch((error: unknown) => {
    process.stdout.write(`${JSON.stringify({ error: String(error) })}\n`);
    // The client keeps the process alive: exit, so that the test sees the error.
    process.exit(1);
});
