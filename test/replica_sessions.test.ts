// Client sessions and request checks (docs/wire-protocol.md §5, §7; docs/vsr.md §5), through the
// simulated harness: register, eviction of the least recently served client when the table is
// full, duplicates answered from the cached reply, requests dropped while executing, the right
// eviction reason for each invalid request, ping → pong, and the pulse that expires pending
// transfers with no client traffic.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Op, TF, transfer_encode } from '../lib/testing/ledger_model';
import type { Transfer } from '../lib/testing/ledger_model';
import { EvictionReason, header_size } from '../lib/vsr/constants';
import { offsets, frame } from '../lib/vsr/header_layout';
import {
    Harness, account_event, config_sim, ids_body, multi_batch_body, multi_batch_split,
    request_and_wait, settle,
} from './replica_harness';
import type { SimClient } from './replica_harness';


function transfer(id: bigint, fields: Partial<Transfer> = {}): Uint8Array {
    const t: Transfer = {
        id, debit_account_id: 1n, credit_account_id: 2n, amount: 10n, pending_id: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, timeout: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n, ...fields,
    };
    const bytes = new Uint8Array(128);
    transfer_encode(t, bytes, 0);
    return bytes;
}




test('sessions: a full table evicts the least recently served client', async () => {
    const harness = await Harness.create({ seed: 11, clients: config_sim.clients_max + 1 });
    const clients = harness.clients;
    const late = clients[clients.length - 1]!;
    for (const client of clients.slice(0, -1)) {
        client.register();
        harness.run_until(() => client.session !== 0n, 1000);
    }
    // Client 0 is served again, so client 1 is now the one served longest ago.
    request_and_wait(harness, clients[0]!, Op.lookup_accounts,
        multi_batch_body([ids_body(1n)], 16));
    late.register();
    harness.run_until(() => late.session !== 0n, 1000);
    settle(harness, 20);
    assert.equal(clients[1]!.evicted, EvictionReason.no_session);
    for (const client of [clients[0]!, clients[2]!, clients[3]!]) assert.equal(client.evicted, 0);
    assert.equal(harness.replica.sessions.count, config_sim.clients_max);
    // The evicted client's next request is refused with no_session, not executed.
    const evicted = clients[1]!;
    evicted.evicted = 0;
    const commits = harness.replica.stats.commits;
    evicted.submit(Op.lookup_accounts, multi_batch_body([ids_body(1n)], 16));
    settle(harness, 20);
    assert.equal(evicted.evicted, EvictionReason.no_session);
    assert.equal(harness.replica.stats.commits, commits);
});

test('sessions: duplicates get the cached reply; a request in flight is not executed twice',
    async () => {
        const harness = await Harness.create({ seed: 12, clients: 1 });
        harness.register_all();
        const client = harness.clients[0]!;
        request_and_wait(harness, client, Op.create_accounts,
            multi_batch_body([account_event(1n), account_event(2n)], 128));
        // Send the transfer request three times at once: while it executes, copies are dropped.
        client.submit(Op.create_transfers, multi_batch_body([transfer(100n)], 128));
        const request = client.inflight!;
        client.network.client_send(0, request);
        client.network.client_send(0, request);
        harness.run_until(() => client.inflight === null, 1000);
        settle(harness, 20);
        const stats = harness.replica.stats;
        assert(stats.requests_dropped >= 1, 'copies received while executing are dropped');
        const commits = stats.commits;
        const resent = stats.replies_resent;
        // After the reply, a retransmit is answered from the cache: byte-identical, no commit.
        client.network.client_send(0, request);
        settle(harness, 20);
        assert.equal(stats.commits, commits);
        assert.equal(stats.replies_resent, resent + 1);
        const reply = multi_batch_split(client.exchanges[2]!.reply_body, 16)[0]!;
        assert.equal(new DataView(reply.buffer, reply.byteOffset).getUint32(8, true),
            0xffffffff, 'created once');
        const balances = request_and_wait(harness, client, Op.lookup_accounts,
            multi_batch_body([ids_body(1n)], 16));
        const debits_posted = new DataView(balances.buffer, balances.byteOffset + 32, 16);
        assert.equal(debits_posted.getBigUint64(0, true), 10n, 'the transfer applied once');
    });

test('sessions: a wrong parent or a skipped request number is dropped, not evicted',
    async () => {
        const harness = await Harness.create({ seed: 13, clients: 1 });
        harness.register_all();
        const client = harness.clients[0]!;
        const body = multi_batch_body([ids_body(1n)], 16);
        client.request_number = 1;
        const wrong_parent = client.build(Op.lookup_accounts, body, (view) => {
            view.set_u8(offsets.request.parent, view.u8(offsets.request.parent) ^ 1);
        });
        client.request_number = 2;
        const skipped = client.build(Op.lookup_accounts, body);
        client.request_number = 0;
        const dropped = harness.replica.stats.requests_dropped;
        client.network.client_send(0, wrong_parent);
        client.network.client_send(0, skipped);
        settle(harness, 20);
        assert.equal(harness.replica.stats.requests_dropped, dropped + 2);
        assert.equal(client.evicted, 0);
        request_and_wait(harness, client, Op.lookup_accounts, body);
    });

interface BadCase {
    name: string;
    reason: number;
    send(client: SimClient): Uint8Array;
}

const bad_cases: BadCase[] = [
    {
        name: 'release below 0.16.4', reason: EvictionReason.client_release_too_low,
        send: (client) => {
            client.release = 0x00001003;
            return client.build(2, new Uint8Array(256));
        },
    },
    {
        name: 'release above ours', reason: EvictionReason.client_release_too_high,
        send: (client) => {
            client.release = 0x00001200;
            return client.build(2, new Uint8Array(256));
        },
    },
    {
        name: 'register without a body', reason: EvictionReason.invalid_request_body_size,
        send: (client) => client.build(2, new Uint8Array(0)),
    },
    {
        name: 'register with a non-zero reserved byte',
        reason: EvictionReason.invalid_request_body,
        send: (client) => {
            const body = new Uint8Array(256);
            body[100] = 1;
            return client.build(2, body);
        },
    },
    {
        name: 'unknown operation 200', reason: EvictionReason.invalid_request_operation,
        send: (client) => with_session(client, 200, multi_batch_body([ids_body(1n)], 16)),
    },
    {
        name: 'pulse from a client', reason: EvictionReason.invalid_request_operation,
        send: (client) => with_session(client, 128, new Uint8Array(0)),
    },
    {
        name: 'a broken multi-batch trailer', reason: EvictionReason.invalid_request_body,
        send: (client) => {
            const body = multi_batch_body([ids_body(1n)], 16);
            body[20] = 0;
            return with_session(client, Op.lookup_accounts, body);
        },
    },
    {
        name: 'two filters in one query batch', reason: EvictionReason.invalid_request_body,
        send: (client) => with_session(client, Op.query_accounts,
            multi_batch_body([new Uint8Array(128)], 64)),
    },
    {
        name: 'a partial event', reason: EvictionReason.invalid_request_body,
        send: (client) => {
            const body = multi_batch_body([account_event(5n)], 128);
            body[body.length - 4] = 2; // The count says 2 events; the payload holds 1.
            return with_session(client, Op.create_accounts, body);
        },
    },
    {
        name: 'an unknown session', reason: EvictionReason.no_session,
        send: (client) => with_session(client, Op.lookup_accounts,
            multi_batch_body([ids_body(1n)], 16), client.session + 100n),
    },
    {
        name: 'an older session', reason: EvictionReason.session_too_low,
        send: (client) => with_session(client, Op.lookup_accounts,
            multi_batch_body([ids_body(1n)], 16), client.session - 1n),
    },
    {
        name: 'a release change within the session',
        reason: EvictionReason.session_release_mismatch,
        send: (client) => {
            client.release -= 1;
            return with_session(client, Op.lookup_accounts, multi_batch_body([ids_body(1n)], 16));
        },
    },
];

/** A request as the registered client would send next, with a session (maybe a wrong one). */
function with_session(client: SimClient, operation: number, body: Uint8Array,
    session?: bigint): Uint8Array {
    assert(client.session > 0n);
    client.request_number += 1;
    const bytes = client.build(operation, body, (view) => {
        if (session !== undefined) view.set_u64_bigint(offsets.request.session, session);
    });
    client.request_number -= 1;
    return bytes;
}

test('request checks: each invalid request gets its eviction reason; others are unaffected',
    async () => {
        const harness = await Harness.create({ seed: 14, clients: 2 });
        const [victim, good] = harness.clients as [SimClient, SimClient];
        good.register(); // First, so that the victim's session is above 1 (session - 1 > 0).
        harness.run_until(() => good.session !== 0n, 1000);
        request_and_wait(harness, good, Op.create_accounts,
            multi_batch_body([account_event(1n), account_event(2n)], 128));
        for (const bad of bad_cases) {
            // A fresh victim: a new session each time, so session checks have one to compare.
            victim.evicted = 0;
            victim.release = 0x00001109;
            const needs_session = bad.reason >= EvictionReason.invalid_request_operation &&
                bad.reason !== EvictionReason.invalid_request_body_size &&
                !bad.name.startsWith('register');
            if (needs_session && victim.session === 0n) {
                victim.register();
                harness.run_until(() => victim.session !== 0n, 1000);
            }
            const commits = harness.replica.stats.commits;
            victim.network.client_send(0, bad.send(victim));
            settle(harness, 20);
            assert.equal(victim.evicted, bad.reason, bad.name);
            assert.equal(harness.replica.stats.commits, commits, `${bad.name}: not executed`);
            assert.equal(harness.replica.stats.evictions[bad.reason]! > 0, true);
            const id = BigInt(1000 + bad_cases.indexOf(bad));
            request_and_wait(harness, good, Op.create_transfers,
                multi_batch_body([transfer(id)], 128));
            assert.equal(good.evicted, 0);
        }
        assert.deepEqual(harness.network.rejected, []);
    });

test('ping_client is answered with pong_client; a ping with an unknown session is evicted',
    async () => {
        const harness = await Harness.create({ seed: 15, clients: 3 });
        const [first, second, stranger] = harness.clients as [SimClient, SimClient, SimClient];
        first.ping();
        settle(harness, 10);
        assert.equal(first.pongs, 1, 'a ping before registering gets a pong');
        for (const client of [first, second]) {
            client.register();
            harness.run_until(() => client.session !== 0n, 1000);
        }
        first.ping();
        settle(harness, 10);
        assert.equal(first.pongs, 2);
        // A session above commit_min may still be committing: a pong, not an eviction.
        stranger.session = BigInt(harness.replica.commit_min + 50);
        stranger.ping();
        settle(harness, 10);
        assert.equal(stranger.evicted, 0);
        assert.equal(stranger.pongs, 1);
        // A committed session the table does not hold for this client: evicted.
        stranger.session = second.session;
        stranger.ping();
        settle(harness, 10);
        assert.equal(stranger.evicted, EvictionReason.no_session);
        assert.equal(harness.replica.stats.pongs, 3);
    });

test('pulse: a pending transfer expires on time with no client traffic', async () => {
    const harness = await Harness.create({ seed: 16, clients: 1 });
    harness.register_all();
    const client = harness.clients[0]!;
    request_and_wait(harness, client, Op.create_accounts,
        multi_batch_body([account_event(1n), account_event(2n)], 128));
    request_and_wait(harness, client, Op.create_transfers, multi_batch_body([
        transfer(7n, { flags: TF.pending, timeout: 1, amount: 50n })], 128));
    const pending = (): bigint => {
        const reply = request_and_wait(harness, client, Op.lookup_accounts,
            multi_batch_body([ids_body(1n)], 16));
        return new DataView(reply.buffer, reply.byteOffset + 16, 16).getBigUint64(0, true);
    };
    assert.equal(pending(), 50n, 'debits_pending while the transfer is pending');
    const pulses = harness.replica.stats.pulses;
    settle(harness, 50); // 0.5 s: not due yet.
    assert.equal(harness.replica.stats.pulses, pulses);
    settle(harness, 70); // 1.2 s after creation: expired by a pulse within 100 ms.
    assert.equal(harness.replica.stats.pulses, pulses + 1);
    assert.equal(pending(), 0n, 'the pulse released the pending amount');
});

test('sessions survive a checkpoint and a restart: a duplicate gets the reply from disk',
    async () => {
        const config = { ...config_sim, slot_count: 32 };
        const harness = await Harness.create({ seed: 19, clients: 2, config });
        harness.register_all();
        const [early, busy] = harness.clients as [SimClient, SimClient];
        request_and_wait(harness, early, Op.create_accounts,
            multi_batch_body([account_event(1n), account_event(2n)], 128));
        // Enough ops that a checkpoint covers early's reply and its WAL slot is reused.
        for (let index = 0; index < 40; index++) {
            request_and_wait(harness, busy, Op.lookup_accounts,
                multi_batch_body([ids_body(1n)], 16));
        }
        assert(harness.replica.checkpoint_op > early.exchanges[1]!.op, 'a checkpoint covers it');
        await harness.crash_restart();
        const stats = harness.replica.stats;
        assert.equal(stats.replies_lost, 0);
        const commits = stats.commits;
        // The client's on_message asserts that a repeated reply is byte-identical.
        early.network.client_send(0, early.sent.get(1)!);
        settle(harness, 20);
        assert.equal(stats.replies_resent, 1, 'answered from the reply read back from disk');
        assert.equal(stats.commits, commits, 'not executed again');
        // Both clients carry on in their sessions after the restart.
        request_and_wait(harness, early, Op.lookup_accounts, multi_batch_body([ids_body(2n)], 16));
        request_and_wait(harness, busy, Op.lookup_accounts, multi_batch_body([ids_body(2n)], 16));
    });

test('replies echo the request: release, checksum, client, operation; op equals commit',
    async () => {
        const harness = await Harness.create({ seed: 18, clients: 1 });
        harness.register_all();
        const client = harness.clients[0]!;
        client.submit(Op.lookup_accounts, multi_batch_body([ids_body(1n)], 16));
        const request = client.inflight!;
        harness.run_until(() => client.inflight === null, 1000);
        const reply = client.replies.get(1)!;
        const view = new DataView(reply.buffer, reply.byteOffset);
        assert.equal(view.getUint32(frame.release, true), 0x00001109);
        assert.deepEqual(reply.subarray(offsets.reply.request_checksum,
            offsets.reply.request_checksum + 16), request.subarray(0, 16));
        assert.equal(view.getBigUint64(offsets.reply.op, true),
            view.getBigUint64(offsets.reply.commit, true));
        assert.equal(reply[offsets.reply.operation], Op.lookup_accounts);
        assert.equal(reply.length, header_size + 128, 'an empty lookup: one 128-byte trailer');
    });
