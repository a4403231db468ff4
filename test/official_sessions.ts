// Many sessions on the official tigerbeetle-node@0.17.9 client, run as a child process by
// test/server_sessions.test.ts (tests only). Usage:
//   node official_sessions.js <port> <clients> <evictions> <requests> <base>
// It creates `clients` clients and registers them one after another (each one's first request),
// so that with clients = clients_max + evictions the first `evictions` are the least recently
// served sessions and are evicted by the last registrations; each of those must then fail with
// ERR_CLIENT_EVICTED. Then `requests` single-transfer createTransfers requests go out from the
// live clients, one at a time per client, each moving 1 from account base to account base + 1,
// with the transfer id base * 1e9 + request index. Every result must be `created` (a request
// applied twice would answer `exists`). Finally a fresh client checks that every acknowledged
// transfer exists and that both balances equal the number of transfers that exist. Prints one
// JSON line; exits 0 when all holds. With requests = 0 it only checks the state an earlier run
// left: it scans the first `<clients>` transfer ids, and `<evictions>` is then the number of them
// that must exist (-1: any number, as long as the balances equal it).
import assert from 'node:assert/strict';

import { CreateTransferStatus, createClient } from 'tigerbeetle-node';
import type { Client, Transfer } from 'tigerbeetle-node';

const account_template = {
    debits_pending: 0n, debits_posted: 0n, credits_pending: 0n, credits_posted: 0n,
    user_data_128: 0n, user_data_64: 0n, user_data_32: 0, reserved: 0, ledger: 1, code: 1,
    flags: 0, timestamp: 0n,
};

function transfer(id: bigint, debit: bigint, credit: bigint): Transfer {
    return {
        id, debit_account_id: debit, credit_account_id: credit, amount: 1n, pending_id: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, timeout: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n,
    };
}

interface Arguments {
    port: string; clients: number; evictions: number; requests: number; base: bigint;
}

function arguments_parse(): Arguments {
    const [port, clients, evictions, requests, base] = process.argv.slice(2);
    assert(port !== undefined && base !== undefined);
    return {
        port, clients: Number(clients), evictions: Number(evictions),
        requests: Number(requests), base: BigInt(base),
    };
}

/** Registers the clients in order; returns the live ones, checking the evicted ones fail. */
async function sessions_open(args: Arguments, clients: Client[]): Promise<Client[]> {
    for (const client of clients) await client.lookupAccounts([args.base]);
    const evicted = clients.slice(0, args.evictions);
    for (const client of evicted) {
        await assert.rejects(client.lookupAccounts([args.base]),
            // The client closes itself when it learns of the eviction: the request that learns
            // it fails with ERR_CLIENT_EVICTED or as closed, depending on which comes first.
            (error: Error & { code?: string }) => error.code === 'ERR_CLIENT_EVICTED' ||
                /evicted|closed/i.test(error.message));
    }
    return clients.slice(args.evictions);
}

/** Sends the single-transfer requests from the live clients; returns the acknowledged count. */
async function transfers_send(args: Arguments, live: Client[]): Promise<number> {
    const first_id = args.base * 1_000_000_000n;
    let next = 0;
    let acknowledged = 0;
    const worker = async (client: Client): Promise<void> => {
        while (next < args.requests) {
            const index = next++;
            const results = await client.createTransfers(
                [transfer(first_id + BigInt(index), args.base, args.base + 1n)]);
            assert.equal(results.length, 1);
            assert.equal(results[0]!.status, CreateTransferStatus.created);
            acknowledged += 1;
            // Progress for the test driving this run (it kills the server mid-load).
            if (acknowledged % 100 === 0) process.stdout.write(`acknowledged ${acknowledged}\n`);
        }
    };
    await Promise.all(live.map(worker));
    return acknowledged;
}

/** Every transfer id in [0, count_max): how many exist, and the two accounts' balances. */
async function state_check(args: Arguments, count_max: number):
    Promise<{ existing: number; debits: bigint; credits: bigint }> {
    const client = createClient({ cluster_id: 0n, replica_addresses: [args.port] });
    const first_id = args.base * 1_000_000_000n;
    let existing = 0;
    for (let start = 0; start < count_max; start += 8000) {
        const ids: bigint[] = [];
        for (let index = start; index < Math.min(count_max, start + 8000); index++) {
            ids.push(first_id + BigInt(index));
        }
        existing += (await client.lookupTransfers(ids)).length;
    }
    const [debit, credit] = await client.lookupAccounts([args.base, args.base + 1n]);
    client.destroy();
    return { existing, debits: debit!.debits_posted, credits: credit!.credits_posted };
}

async function main(): Promise<void> {
    const args = arguments_parse();
    if (args.requests === 0) {
        const state = await state_check(args, args.clients);
        const expected = args.evictions;
        const ok = state.debits === BigInt(state.existing) &&
            state.credits === BigInt(state.existing) &&
            (expected < 0 || state.existing === expected);
        process.stdout.write(`${JSON.stringify({
            existing: state.existing, debits_posted: String(state.debits),
            credits_posted: String(state.credits), ok,
        })}\n`);
        process.exitCode = ok ? 0 : 1;
        return;
    }
    const setup = createClient({ cluster_id: 0n, replica_addresses: [args.port] });
    await setup.createAccounts([{ ...account_template, id: args.base },
        { ...account_template, id: args.base + 1n }]);
    setup.destroy();
    const clients = Array.from({ length: args.clients },
        () => createClient({ cluster_id: 0n, replica_addresses: [args.port] }));
    const live = await sessions_open(args, clients);
    const acknowledged = await transfers_send(args, live);
    // Not the evicted ones: they closed themselves, and tigerbeetle-node 0.17.9 panics
    // (ClientInvalid) when a closed client is destroyed again.
    for (const client of live) client.destroy();
    const state = await state_check(args, args.requests);
    const ok = acknowledged === args.requests && state.existing === args.requests &&
        state.debits === BigInt(args.requests) && state.credits === BigInt(args.requests);
    process.stdout.write(`${JSON.stringify({
        sessions: live.length, evicted: args.evictions, acknowledged,
        existing: state.existing, debits_posted: String(state.debits), ok,
    })}\n`);
    // The evicted clients (closed, not destroyed) would keep the event loop alive.
    process.exit(ok ? 0 : 1);
}

main().catch((error: unknown) => {
    process.stdout.write(`${JSON.stringify({ error: String(error) })}\n`);
    process.exitCode = 1;
});
