// Our client against a fake server that speaks the protocol (test/client_fake_server.ts): wire
// encoding, batching of concurrent calls, reply acceptance (docs/wire-protocol.md §5.4),
// retransmission and deduplication, evictions, input errors with tigerbeetle-node's messages,
// timeouts, AbortSignal, destroy, and connection events.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';

import {
    Account, AccountFilter, AccountFilterFlags, createClient, CreateAccountStatus,
    CreateTransferStatus, ErrorCodes, id, QueryFilter, RequestError, Transfer, TransferFlags,
} from '../lib/client/index';
import type { Client } from '../lib/client/index';
import { EvictionReason, header_size } from '../lib/vsr/constants';
import { HeaderView, set_checksum, set_checksum_body } from '../lib/vsr/header';
import { frame, offsets } from '../lib/vsr/header_layout';
import * as tigerbeetle from 'tigerbeetle-node';

import { benchmark_run, progress_text } from '../lib/cli/benchmark';
import type { BenchmarkProgress } from '../lib/cli/benchmark';
import * as ringledger from '../lib/index';
import { FakeServer } from './client_fake_server';
import { encode_events } from '../lib/client/codec';
import { Operation } from '../lib/client/bindings';

/** Re-checksums a mutated reply but keeps its context, which the server's session chain holds. */
function reseal(header: HeaderView): void {
    set_checksum_body(header);
    set_checksum(header);
}

function account(id_value: bigint, fields: Partial<Account> = {}): Account {
    return {
        id: id_value, debits_pending: 0n, debits_posted: 0n, credits_pending: 0n,
        credits_posted: 0n, user_data_128: 0n, user_data_64: 0n, user_data_32: 0, reserved: 0,
        ledger: 1, code: 718, flags: 0, timestamp: 0n, ...fields,
    };
}

function transfer(id_value: bigint, fields: Partial<Transfer> = {}): Transfer {
    return {
        id: id_value, debit_account_id: 1n, credit_account_id: 2n, amount: 10n, pending_id: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, timeout: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n, ...fields,
    };
}

function account_filter(account_id: bigint, fields: Partial<AccountFilter> = {}): AccountFilter {
    return {
        account_id, user_data_128: 0n, user_data_64: 0n, user_data_32: 0, code: 0,
        timestamp_min: 0n, timestamp_max: 0n, limit: 8189,
        flags: AccountFilterFlags.debits | AccountFilterFlags.credits, ...fields,
    };
}

function query_filter(fields: Partial<QueryFilter> = {}): QueryFilter {
    return {
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, ledger: 0, code: 0,
        timestamp_min: 0n, timestamp_max: 0n, limit: 8189, flags: 0, ...fields,
    };
}

async function with_server(
    body: (server: FakeServer, client: Client) => Promise<void>,
    options: { batch_size_limit?: number } = {},
): Promise<void> {
    const server = new FakeServer(options);
    const port = await server.start();
    const client = createClient({ cluster_id: 0n, replica_addresses: [String(port)] });
    try {
        await body(server, client);
    } finally {
        client.destroy();
        await server.close();
    }
}

function rejects_with(code: string): (error: unknown) => boolean {
    return (error: unknown) => {
        assert.ok(error instanceof RequestError, `expected RequestError, got ${String(error)}`);
        assert.equal(error.code, code);
        return true;
    };
}

describe('client: encoding and batching', () => {
    test('lookup body is the id plus a 16-byte trailer, byte for byte (§6.2)', async () => {
        await with_server(async (server, client) => {
            assert.deepEqual(await client.lookupAccounts([1n]), []);
            const request = server.requests.find((info) => info.operation === 140)!;
            const body = request.message.subarray(header_size);
            const expected = new Uint8Array(32);
            expected[0] = 1;
            expected.fill(0xFF, 16, 28);
            expected.set([1, 0, 1, 0], 28);
            assert.deepEqual(body, expected);
            assert.equal(request.release, 0x00001109);
            assert.equal(request.request, 1);
        });
    });

    test('register, then requests numbered 1, 2, 3 chained by parent = context', async () => {
        await with_server(async (server, client) => {
            let registered = 0;
            client.on('registered', (session: number) => { registered = session; });
            await client.createAccounts([account(1n)]);
            await client.lookupAccounts([1n]);
            await client.lookupAccounts([2n]);
            assert.ok(registered > 0);
            assert.deepEqual(server.requests.map((info) => info.request), [0, 1, 2, 3]);
            assert.deepEqual(server.requests.map((info) => info.operation), [2, 146, 140, 140]);
            for (const info of server.requests.slice(1)) {
                const session = info.message.subarray(offsets.request.session,
                    offsets.request.session + 8);
                assert.equal(Buffer.from(session).readBigUInt64LE(0), BigInt(registered));
            }
        });
    });

    test('concurrent calls of one operation share a multi-batch request', async () => {
        await with_server(async (server, client) => {
            const results = await client.createAccounts([1n, 2n, 3n, 4n, 5n].map((n) =>
                account(n)));
            assert.ok(results.every((result) => result.status === CreateAccountStatus.created));
            const calls = [client.lookupAccounts([1n]), client.lookupAccounts([3n, 4n]),
                client.lookupAccounts([]), client.lookupAccounts([5n, 99n]),
                client.lookupTransfers([7n]), client.lookupAccounts([2n])];
            const found = await Promise.all(calls);
            assert.deepEqual(found.map((list) => list.map((item) => item.id)),
                [[1n], [3n, 4n], [], [5n], [], [2n]]);
            // The first went alone; the next three merged; another operation ends the batch.
            const batches = server.requests.slice(2).map((info) =>
                [info.operation, info.batch_counts.join('/')]);
            assert.deepEqual(batches, [[140, '1'], [140, '2/0/2'], [141, '1'], [140, '1']]);
        });
    });

    test('results decode every field, u128 values above 2^64 included', async () => {
        await with_server(async (_server, client) => {
            const big = (1n << 127n) + 12345n;
            const input = account(big, { user_data_128: big - 1n, user_data_64: (1n << 64n) - 1n,
                user_data_32: 0xFFFFFFFF, code: 65535, ledger: 0xFFFFFFFF });
            const [created] = await client.createAccounts([input]);
            assert.equal(created!.status, CreateAccountStatus.created);
            const [found] = await client.lookupAccounts([big]);
            assert.deepEqual({ ...found, timestamp: 0n }, input);
            assert.equal(found!.timestamp, created!.timestamp);
            assert.deepEqual(Object.keys(found!), Object.keys(input));
        });
    });

    test('transfers, filters and balances round trip', async () => {
        await with_server(async (_server, client) => {
            await client.createAccounts([account(1n, { flags: 8 }), account(2n)]);
            const results = await client.createTransfers([
                transfer(10n, { amount: 5n }),
                transfer(11n, { amount: 7n, flags: TransferFlags.pending, timeout: 60 }),
                transfer(12n, { debit_account_id: 1n, credit_account_id: 1n }),
            ]);
            assert.deepEqual(results.map((result) => result.status), [
                CreateTransferStatus.created, CreateTransferStatus.created,
                CreateTransferStatus.accounts_must_be_different]);
            assert.ok(results.every((result) => result.timestamp > 0n));
            const transfers = await client.getAccountTransfers(account_filter(1n));
            assert.deepEqual(transfers.map((item) => item.id), [10n, 11n]);
            const reversed = await client.getAccountTransfers(account_filter(1n,
                { flags: AccountFilterFlags.debits | AccountFilterFlags.reversed, limit: 1 }));
            assert.deepEqual(reversed.map((item) => item.id), [11n]);
            const balances = await client.getAccountBalances(account_filter(1n));
            assert.deepEqual(balances.map((item) => [item.debits_posted, item.debits_pending]),
                [[5n, 0n], [5n, 7n]]);
            const accounts = await client.queryAccounts(query_filter({ ledger: 1 }));
            assert.deepEqual(accounts.map((item) => item.id), [1n, 2n]);
            const none = await client.queryTransfers(query_filter({ code: 2 }));
            assert.deepEqual(none, []);
            assert.deepEqual(await client.createTransfers([]), []);
        });
    });
});

describe('client: input errors match tigerbeetle-node', () => {
    let server: FakeServer;
    let client: Client;
    before(async () => {
        server = new FakeServer();
        const port = await server.start();
        client = createClient({ cluster_id: 0n, replica_addresses: [port] });
    });
    after(async () => {
        client.destroy();
        await server.close();
    });

    const cases: [string, () => Promise<unknown>, string][] = [
        ['u128 too large', () => client.createTransfers([transfer(1n << 128n)]),
            'id must fit in 128 bits'],
        ['u128 negative', () => client.createTransfers([transfer(-1n)]), 'id must be positive'],
        ['u128 not a BigInt', () => client.createAccounts([account(1 as unknown as bigint)]),
            'id must be a BigInt'],
        ['u16 out of range', () => client.createAccounts([account(1n, { code: 65536 })]),
            'code must be a u16.'],
        ['u16 negative', () => client.createAccounts([account(1n, { flags: -1 })]),
            'flags must be a u16.'],
        ['number as string', () => client.createAccounts([account(1n,
            { ledger: '1' as unknown as number })]), 'ledger must be a number'],
        ['u64 out of range', () => client.createAccounts([account(1n,
            { user_data_64: 1n << 64n })]), 'user_data_64 conversion was lossy'],
        ['u64 not a BigInt', () => client.createAccounts([account(1n,
            { timestamp: 0 as unknown as bigint })]),
            'timestamp must be an unsigned 64-bit BigInt'],
        ['lookup id', () => client.lookupAccounts([-5n]), 'lookup must be positive'],
        ['missing field', () => {
            const input: Partial<Account> = account(1n);
            delete input.reserved;
            return client.createAccounts([input as Account]);
        }, 'reserved must be a number'],
        ['not an array', () => client.createAccounts({} as Account[]),
            'Array argument must be an [object Array].'],
        ['null event', () => client.createAccounts([null as unknown as Account]),
            'Cannot convert undefined or null to object'],
        ['filter field', () => client.getAccountTransfers(account_filter(1n,
            { code: 70000 })), 'code must be a u16.'],
    ];
    for (const [name, call, message] of cases) {
        test(name, async () => {
            await assert.rejects(call, (error: unknown) => {
                assert.ok(error instanceof Error);
                assert.equal(error.message, message);
                return true;
            });
        });
    }

    test('an invalid event fails only its own call, the others still batch', async () => {
        const good = client.lookupAccounts([1n]);
        const bad = client.lookupAccounts([1n, 'x' as unknown as bigint]);
        const also_good = client.lookupAccounts([2n]);
        await assert.rejects(bad, /lookup must be a BigInt/);
        assert.deepEqual(await good, []);
        assert.deepEqual(await also_good, []);
    });

    test('too much data: over 8189 events, absurd lengths, query limits', async () => {
        const events = Array.from({ length: 8190 }, (_, index) => transfer(BigInt(index + 1)));
        await assert.rejects(client.createTransfers(events),
            rejects_with(ErrorCodes.ERR_TOO_MUCH_DATA));
        const sparse: Transfer[] = [];
        sparse.length = 0xFFFFFFFF;
        await assert.rejects(client.createTransfers(sparse),
            rejects_with(ErrorCodes.ERR_TOO_MUCH_DATA));
        await assert.rejects(client.queryAccounts(query_filter({ limit: 10_000 })),
            rejects_with(ErrorCodes.ERR_TOO_MUCH_DATA));
        await assert.rejects(client.getAccountTransfers(account_filter(1n, { limit: 8190 })),
            rejects_with(ErrorCodes.ERR_TOO_MUCH_DATA));
        assert.deepEqual(await client.queryAccounts(query_filter({ limit: 8189 })), []);
        const full = Array.from({ length: 8189 }, (_, index) => BigInt(index + 1));
        assert.deepEqual(await client.lookupAccounts(full), []);
    });
});

describe('client: reply acceptance and retransmission', () => {
    test('a dropped request is retransmitted byte for byte and executed once', async () => {
        await with_server(async (server, client) => {
            let dropped = false;
            server.on_request = (info) => {
                if (info.operation !== 146 || dropped) return undefined;
                dropped = true;
                return { kind: 'drop' };
            };
            const [result] = await client.createAccounts([account(1n)]);
            assert.equal(result!.status, CreateAccountStatus.created);
            const sends = server.requests.filter((info) => info.operation === 146);
            assert.equal(sends.length, 2);
            assert.deepEqual(sends[0]!.message, sends[1]!.message);
        });
    });

    test('retransmits of a slow request are not executed twice', async () => {
        await with_server(async (server, client) => {
            let delayed = false;
            server.on_request = (info) => {
                if (info.operation !== 146 || delayed) return undefined;
                delayed = true;
                return { kind: 'delay', ms: 900 };
            };
            const [result] = await client.createAccounts([account(1n)]);
            assert.equal(result!.status, CreateAccountStatus.created);
            assert.ok(server.requests.filter((info) => info.operation === 146).length >= 2);
            const [again] = await client.createAccounts([account(1n)]);
            assert.equal(again!.status, CreateAccountStatus.exists);
        });
    });

    for (const mismatch of ['request_checksum', 'operation', 'release'] as const) {
        test(`a reply with a different ${mismatch} is ignored, the retry succeeds`, async () => {
            await with_server(async (server, client) => {
                const invalid: string[] = [];
                client.on('invalid_message', (_replica: number, reason: string) => {
                    invalid.push(reason);
                });
                let mutated = false;
                server.on_request = (info) => {
                    if (info.operation !== 140 || mutated) return undefined;
                    mutated = true;
                    return { kind: 'mutate_reply', mutate: (_bytes, header) => {
                        if (mismatch === 'request_checksum') {
                            // Flip every bit: a constant could equal the byte already
                            // there (1 in 256 runs, the checksum covers a random client id).
                            const at = offsets.reply.request_checksum;
                            header.set_u8(at, header.u8(at) ^ 0xFF);
                        } else if (mismatch === 'operation') {
                            header.set_u8(offsets.reply.operation, 141);
                        } else {
                            header.release = 0x00001108;
                        }
                        reseal(header);
                    } };
                };
                assert.deepEqual(await client.lookupAccounts([1n]), []);
                assert.deepEqual(invalid, [`reply with a different ${mismatch}`]);
                assert.deepEqual(await client.lookupAccounts([2n]), []);
            });
        });
    }

    test('a corrupt checksum or garbage closes the connection; the client reconnects', async () => {
        for (const kind of ['checksum', 'garbage'] as const) {
            await with_server(async (server, client) => {
                const disconnects: string[] = [];
                client.on('disconnected', (_replica: number, _address: string, reason: string) => {
                    disconnects.push(reason);
                });
                let done = false;
                server.on_request = (info) => {
                    if (info.operation !== 140 || done) return undefined;
                    done = true;
                    if (kind === 'garbage') return { kind: 'garbage' };
                    return { kind: 'mutate_reply', mutate: (bytes) => {
                        bytes[frame.checksum] = bytes[frame.checksum]! ^ 1;
                    } };
                };
                assert.deepEqual(await client.lookupAccounts([1n]), []);
                assert.equal(disconnects.length, 1);
                assert.match(disconnects[0]!, /invalid message/);
            });
        }
    });

    test('a reply whose batches do not match fails the call, the session goes on', async () => {
        await with_server(async (server, client) => {
            let mutated = false;
            server.on_request = (info) => {
                if (info.operation !== 140 || mutated) return undefined;
                mutated = true;
                // Claims two batches for a one-batch request (trailer 01 00 | 00 00 | 02 00).
                return { kind: 'mutate_reply', mutate: (bytes, header) => {
                    const end = bytes.length;
                    bytes.set([1, 0, 0, 0, 2, 0], end - 6);
                    reseal(header);
                } };
            };
            await assert.rejects(client.lookupAccounts([1n]),
                rejects_with(ErrorCodes.ERR_INVALID_REPLY));
            assert.deepEqual(await client.lookupAccounts([2n]), []);
        });
    });
});

describe('client: evictions, timeouts, abort, destroy', () => {
    const evictions: [number, string][] = [
        [EvictionReason.no_session, ErrorCodes.ERR_CLIENT_EVICTED],
        [EvictionReason.client_release_too_low, ErrorCodes.ERR_CLIENT_RELEASE_TOO_LOW],
        [EvictionReason.client_release_too_high, ErrorCodes.ERR_CLIENT_RELEASE_TOO_HIGH],
        [EvictionReason.invalid_request_body, ErrorCodes.ERR_CLIENT_EVICTED],
    ];
    for (const [reason, code] of evictions) {
        test(`eviction reason ${reason} fails calls with ${code}`, async () => {
            await with_server(async (server, client) => {
                const evicted: string[] = [];
                client.on('evicted', (name: string) => evicted.push(name));
                server.on_request = (info) => info.operation === 140 ?
                    { kind: 'evict', reason } : undefined;
                const queued = client.lookupAccounts([1n]);
                const merged = client.lookupAccounts([2n]);
                await assert.rejects(queued, rejects_with(code));
                await assert.rejects(merged, rejects_with(code));
                assert.equal(evicted.length, 1);
                await assert.rejects(client.lookupAccounts([3n]),
                    rejects_with(ErrorCodes.ERR_CLIENT_CLOSED));
                client.destroy();
                client.destroy();
            });
        });
    }

    test('timeout_ms fails a call the cluster does not answer; later calls work', async () => {
        await with_server(async (server, client) => {
            let drops = 0;
            server.on_request = (info) => {
                if (info.operation !== 140 || info.batch_counts[0] !== 3) return undefined;
                drops += 1;
                return { kind: 'drop' };
            };
            await client.lookupAccounts([]);
            const started = Date.now();
            await assert.rejects(client.lookupAccounts([1n, 2n, 3n], { timeout_ms: 50 }),
                rejects_with(ErrorCodes.ERR_REQUEST_TIMEOUT));
            assert.ok(Date.now() - started < 590, 'before the first retransmission');
            server.on_request = null;
            assert.deepEqual(await client.lookupAccounts([1n]), []);
            assert.ok(drops >= 1);
        });
    });

    test('request_timeout_ms applies to queued calls too', async () => {
        const server = new FakeServer();
        const port = await server.start();
        server.on_request = () => ({ kind: 'drop' });
        const client = createClient({ cluster_id: 0n, replica_addresses: [port],
            request_timeout_ms: 40 });
        try {
            const calls = [client.lookupAccounts([1n]), client.createAccounts([account(1n)])];
            for (const call of calls) {
                await assert.rejects(call, rejects_with(ErrorCodes.ERR_REQUEST_TIMEOUT));
            }
        } finally {
            client.destroy();
            await server.close();
        }
    });

    test('an AbortSignal fails the call with ERR_REQUEST_ABORTED and its reason', async () => {
        await with_server(async (server, client) => {
            server.on_request = (info) => info.operation === 140 ? { kind: 'drop' } : undefined;
            const controller = new AbortController();
            const call = client.lookupAccounts([1n], { signal: controller.signal });
            const queued = client.lookupTransfers([1n], { signal: controller.signal });
            controller.abort(new Error('user gave up'));
            for (const promise of [call, queued]) {
                await assert.rejects(promise, (error: unknown) => {
                    assert.ok(error instanceof RequestError);
                    assert.equal(error.code, ErrorCodes.ERR_REQUEST_ABORTED);
                    assert.equal((error.cause as Error).message, 'user gave up');
                    return true;
                });
            }
            await assert.rejects(client.lookupAccounts([1n], { signal: controller.signal }),
                rejects_with(ErrorCodes.ERR_REQUEST_ABORTED));
        });
    });

    test('destroy fails outstanding calls with ERR_CLIENT_CLOSED', async () => {
        await with_server(async (server, client) => {
            server.on_request = (info) => info.operation === 140 ? { kind: 'drop' } : undefined;
            const calls = [client.lookupAccounts([1n]), client.lookupAccounts([2n]),
                client.createAccounts([account(1n)])];
            await new Promise((resolve) => setTimeout(resolve, 30));
            client.destroy();
            for (const call of calls) {
                await assert.rejects(call, rejects_with(ErrorCodes.ERR_CLIENT_CLOSED));
            }
            await assert.rejects(client.createAccounts([]),
                rejects_with(ErrorCodes.ERR_CLIENT_CLOSED));
        });
    });

    test('concurrency_max bounds outstanding calls', async () => {
        const server = new FakeServer();
        const port = await server.start();
        const client = createClient({ cluster_id: 0n, replica_addresses: [port],
            concurrency_max: 2 });
        try {
            const calls = [client.lookupAccounts([1n]), client.lookupAccounts([2n])];
            await assert.rejects(client.lookupAccounts([3n]),
                rejects_with(ErrorCodes.ERR_CONCURRENCY_MAX_EXCEEDED));
            assert.deepEqual(await Promise.all(calls), [[], []]);
            assert.deepEqual(await client.lookupAccounts([3n]), []);
        } finally {
            client.destroy();
            await server.close();
        }
    });
});

describe('client: connections', () => {
    test('connected, disconnected and reconnection with the request resent', async () => {
        await with_server(async (server, client) => {
            const events: string[] = [];
            client.on('connected', () => events.push('connected'));
            client.on('disconnected', () => events.push('disconnected'));
            await client.lookupAccounts([1n]);
            let closed = false;
            server.on_request = (info) => {
                if (closed || info.operation !== 140) return undefined;
                closed = true;
                return { kind: 'close' };
            };
            assert.deepEqual(await client.lookupAccounts([2n]), []);
            assert.deepEqual(events, ['connected', 'disconnected', 'connected']);
            assert.ok(server.pings >= 1, 'ping_client on connect');
        });
    });

    test('the client waits for a cluster that is not up yet', async () => {
        const server = new FakeServer();
        const port = await server.start();
        await server.close();
        const client = createClient({ cluster_id: 0n, replica_addresses: [`127.0.0.1:${port}`] });
        const late = new FakeServer();
        try {
            const call = client.lookupAccounts([1n]);
            await new Promise((resolve) => setTimeout(resolve, 100));
            // Reuse the port: the client keeps reconnecting with backoff until it answers.
            const connected = once(client, 'connected');
            await late.start(port);
            assert.deepEqual(await call, []);
            await connected;
        } finally {
            client.destroy();
            await late.close();
        }
    });

    test('invalid addresses and cluster ids are refused at creation', () => {
        assert.throws(() => createClient({ cluster_id: 0n, replica_addresses: ['nope'] }),
            /invalid replica address/);
        assert.throws(() => createClient({ cluster_id: 0n, replica_addresses: [] }),
            /must not be empty/);
        assert.throws(() => createClient({ cluster_id: -1n, replica_addresses: [3000] }),
            /cluster_id must be positive/);
    });
});

describe('client: public surface', () => {
    test('every export of tigerbeetle-node is exported by ringledger, with equal values', () => {
        const ours = ringledger as unknown as Record<string, unknown>;
        for (const [name, value] of Object.entries(tigerbeetle)) {
            assert.ok(name in ours, `ringledger lacks ${name}`);
            if (typeof value === 'function') {
                assert.equal(typeof ours[name], 'function', name);
            } else if (name === 'ErrorCodes') {
                for (const [key, code] of Object.entries(value as object)) {
                    assert.equal((ours.ErrorCodes as Record<string, string>)[key], code);
                    assert.equal(ringledger.RequestError.errorMessage(code),
                        tigerbeetle.RequestError.errorMessage(code));
                }
            } else {
                assert.deepEqual(ours[name], value, name);
            }
        }
    });
});

describe('benchmark workload', () => {
    test('prints TigerBeetle\'s lines and every transfer is created', async () => {
        const server = new FakeServer({ accounts_max: 1000, transfers_max: 30_000 });
        const port = await server.start();
        const client = createClient({ cluster_id: 0n, replica_addresses: [port] });
        try {
            const lines: string[] = [];
            const result = await benchmark_run(client, { account_count: 500,
                transfer_count: 20_000, transfer_batch_size: 8189, query_count: 5, seed: 7 },
            (line) => lines.push(line));
            assert.equal(result.batch_count, 3);
            assert.equal(lines[0], '3 batches in ' + result.transfer_seconds.toFixed(2) + ' s');
            assert.ok(lines.includes('transfer batch size = 8189 txs'));
            assert.ok(lines.some((line) => /^load accepted = \d+ tx\/s$/.test(line)));
            for (const label of ['batch', 'query']) {
                for (const percent of [1, 50, 99, 100]) {
                    assert.ok(lines.some((line) => new RegExp(
                        `^${label} latency p${percent} = \\d+ ms$`).test(line)), label);
                }
            }
            assert.ok(lines.includes('5 queries in ' + result.query_seconds.toFixed(1) + ' s'));
            const accounts = await client.lookupAccounts(Array.from({ length: 500 },
                (_, index) => BigInt(index + 1)));
            let debits = 0n;
            let credits = 0n;
            for (const account of accounts) {
                debits += account.debits_posted;
                credits += account.credits_posted;
            }
            assert.equal(accounts.length, 500);
            assert.ok(debits > 0n && debits === credits);
            const transfers = await client.lookupTransfers([1n, 20_000n, 20_001n]);
            assert.deepEqual(transfers.map((transfer) => transfer.id), [1n, 20_000n]);
        } finally {
            client.destroy();
            await server.close();
        }
    });
});

describe('benchmark progress', () => {
    test('reported between batches, with the count, the share and the rate so far', async () => {
        const server = new FakeServer({ accounts_max: 100, transfers_max: 30_000 });
        const port = await server.start();
        const client = createClient({ cluster_id: 0n, replica_addresses: [port] });
        try {
            const reports: BenchmarkProgress[] = [];
            await benchmark_run(client, { account_count: 50, transfer_count: 20_000,
                transfer_batch_size: 8189, query_count: 0, seed: 3 }, () => undefined,
            (now) => reports.push(now), 0);
            assert.deepEqual(reports.map((now) => [now.transfers_created, now.transfer_count]),
                [[8189, 20_000], [16_378, 20_000], [20_000, 20_000]]);
            for (let index = 1; index < reports.length; index++) {
                assert(reports[index]!.seconds >= reports[index - 1]!.seconds);
            }
        } finally {
            client.destroy();
            await server.close();
        }
        assert.equal(progress_text({ seconds: 2.4, transfers_created: 500_000,
            transfer_count: 2_000_000 }), '  2 s: 500000 of 2000000 transfers (25%), ' +
            '208333 tx/s so far');
    });
});

describe('client: id()', () => {
    test('strictly increasing, time in the high 48 bits', () => {
        let last = id();
        const before_ms = BigInt(Date.now());
        for (let index = 0; index < 100_000; index++) {
            const next = id();
            assert.ok(next > last);
            last = next;
        }
        const time_ms = last >> 80n;
        assert.ok(time_ms >= before_ms - 1n && time_ms <= BigInt(Date.now()) + 1n);
    });
});

describe('client: u128 encoding at the fast path boundaries', () => {
    test('values around 2^32, 2^53, 2^64 and 2^128 encode to their exact bytes', () => {
        const values = [0n, 1n, (1n << 32n) - 1n, 1n << 32n, (1n << 53n) - 1n, 1n << 53n,
            (1n << 53n) + 1n, (1n << 64n) - 1n, 1n << 64n, (1n << 128n) - 1n];
        const view = new DataView(new ArrayBuffer(values.length * 16 + 3));
        // An odd offset: DataView stores need no alignment, and the encoder must not assume it.
        encode_events(Operation.lookup_accounts, values, view, 3);
        for (let index = 0; index < values.length; index++) {
            const at = 3 + index * 16;
            const low = view.getBigUint64(at, true);
            const high = view.getBigUint64(at + 8, true);
            assert.equal((high << 64n) | low, values[index], `value ${values[index]}`);
        }
    });
});
