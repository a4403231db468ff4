// The replica driven by the deterministic simulator: simulated time, a lossy duplicating network,
// simulated clients and SimulatorStorage. A random workload must match the reference ledger model
// op for op (replies, timestamps, pulses), survive crashes, and never apply a request twice.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { test_seeds } from '../lib/testing/seed';
import { LedgerModel, Op } from '../lib/testing/ledger_model';
import { LedgerWorkload } from '../lib/testing/ledger_workload';
import { Prng } from '../lib/prng';
import { EvictionReason } from '../lib/vsr/constants';
import {
    multi_batch_split, request_body, request_check, request_next, result_size,
} from '../lib/testing/ledger_requests';
import type { WorkloadRequest } from '../lib/testing/ledger_requests';
import type { Exchange, SimClient } from './replica_harness';
import { Harness, config_sim } from './replica_harness';

/**
 * Runs `requests` workload requests through the clients, crashing the replica `crashes` times:
 * evenly spread over the answers, or each time `crash_when` first holds after the last crash.
 */
async function run_workload(harness: Harness, workload: LedgerWorkload, requests: number,
    crashes: number, crash_when?: () => boolean): Promise<void> {
    const sent = new Map<SimClient, WorkloadRequest[]>();
    let issued = 0;
    let answered = 0;
    let crashed = 0;
    for (let step = 0; step < 200_000 && answered < requests; step++) {
        for (const client of harness.clients) {
            if (client.evicted !== 0) continue; // Its session is gone: it sends nothing more.
            const list = sent.get(client) ?? [];
            sent.set(client, list);
            if (client.idle && issued < requests) {
                const request = request_next(workload);
                list.push(request);
                client.submit(request.operation, request_body(request));
                issued += 1;
            }
        }
        harness.tick();
        answered = harness.clients.reduce((sum, client) => sum + client.exchanges.length - 1, 0);
        const due = crash_when === undefined
            ? answered >= (requests * (crashed + 1)) / (crashes + 1) : crash_when();
        if (crashed < crashes && due) {
            crashed += 1;
            await harness.crash_restart();
        }
    }
    assert.equal(answered, requests, 'every request is answered');
    assert.equal(crashed, crashes);
    for (const [client, list] of sent) {
        // Exchange 0 is the register; exchange i answers sent[i - 1].
        for (let index = 0; index < list.length; index++) {
            const exchange = client.exchanges[index + 1]!;
            const request = list[index]!;
            const replies = multi_batch_split(exchange.reply_body, result_size(request.operation));
            request.batches.forEach((batch, b) => workload.observe(batch, replies[b]!));
        }
    }
}

/**
 * Re-executes the committed log on the reference model: pulses at their timestamps, each client
 * request batch by batch at its docs/wire-protocol.md §6.6 timestamp, and compares every reply
 * batch byte for byte. Also: each (client, request) is in the log exactly once.
 */
function check_against_model(harness: Harness): void {
    const model = new LedgerModel();
    const by_client = new Map<bigint, Map<number, Exchange>>();
    for (const client of harness.clients) {
        by_client.set(client.id, new Map(client.exchanges.map((e) => [e.request, e])));
    }
    const seen = new Set<string>();
    let previous = 0n;
    harness.log_capture();
    assert.equal(harness.log.length, harness.replica.commit_min + 1, 'every op was captured');
    for (const entry of harness.log.slice(1)) {
        assert(entry.timestamp > previous, 'prepare timestamps strictly increase');
        previous = entry.timestamp;
        if (entry.operation === 4) {
            model.execute(Op.pulse, entry.timestamp, new Uint8Array(0));
            continue;
        }
        const key = `${entry.client}/${entry.request}`;
        assert(!seen.has(key), `request ${key} was applied twice`);
        seen.add(key);
        if (entry.operation === 2) continue;
        const exchange = by_client.get(entry.client)?.get(entry.request);
        assert(exchange !== undefined, `op ${entry.op} has no client exchange`);
        assert.equal(exchange.op, entry.op);
        assert.equal(exchange.timestamp, entry.timestamp);
        request_check(model, exchange.op, exchange.operation, exchange.timestamp,
            exchange.request_body, exchange.reply_body);
    }
}

const runs = test_seeds([1, 2, 3, 4]).map((seed) =>
    ({ seed, slot_count: [256, 256, 32, 64][(seed + 3) % 4]! }));
for (const { seed, slot_count } of runs) {
    test(`replica simulator: random workload matches the model through crashes (seed ${seed}, ` +
        `${slot_count} WAL slots)`, async () => {
            const config = { ...config_sim, slot_count };
            const harness = await Harness.create({ seed, clients: 3, config });
            harness.network.loss_percent = 3;
            harness.network.duplicate_percent = 3;
            harness.register_all();
            const workload = new LedgerWorkload(seed, 20);
            await run_workload(harness, workload, 150, slot_count < 150 ? 6 : 2);
            check_against_model(harness);
            if (slot_count < 150) {
                assert(harness.replica.op > 2 * slot_count, 'the WAL wrapped');
                assert(harness.checkpoints + harness.replica.stats.checkpoints > 2);
            }
            assert.equal(harness.wal_stalls + harness.replica.stats.wal_stalls, 0,
                'commits pause during a checkpoint, so the pipeline never reaches the WAL limit');
            const retransmits = harness.clients.reduce((sum, c) => sum + c.retransmits, 0);
            assert(retransmits > 0, 'the lossy network made clients retransmit');
            assert(harness.replica.stats.commits > 0);
            // A restart at rest rebuilds exactly the same state from the WAL.
            harness.run_until(() => harness.storage.in_flight === 0 &&
                !harness.replica.busy && harness.network.packets.length === 0, 1000);
            const state = harness.ledger.checksum_state();
            const sessions = harness.replica.sessions.reply_headers.slice();
            const op = harness.replica.op;
            await harness.crash_restart();
            assert.equal(harness.replica.op, op);
            assert.equal(harness.replica.commit_min, op);
            assert.equal(harness.ledger.checksum_state(), state);
            assert.deepEqual(harness.replica.sessions.reply_headers, sessions);
        });
}

// Issue 9: a checkpoint writes one reply per session changed since the last one. With more
// changed sessions than client-reply operations, the writes queue (they used to trip an
// assertion, and the same state then failed every restart during replay). The session count
// comes from the seed, up to clients_max = 64, with more clients than sessions so that some are
// evicted; the WAL is short so that the run crosses several checkpoints and crashes.
function session_clients(harness: Harness): Set<bigint> {
    const sessions = harness.replica.sessions;
    const ids = new Set<bigint>();
    for (let entry = 0; entry < sessions.capacity; entry++) {
        if (sessions.session(entry) === 0) continue;
        let id = 0n;
        for (let word = 3; word >= 0; word--) {
            id = (id << 32n) | BigInt(sessions.client_word(entry, word));
        }
        ids.add(id);
    }
    return ids;
}

const session_seeds = test_seeds([21, 22, 23]);
for (const seed of session_seeds) {
    test(`replica simulator: many sessions and evictions across checkpoints and crashes ` +
        `(seed ${seed})`, async () => {
            const prng = new Prng(seed);
            const clients_max = 9 + prng.int(64 - 9 + 1);
            const evictions = 1 + prng.int(4);
            const config = { ...config_sim, slot_count: 64, clients_max };
            const harness = await Harness.create({
                seed, clients: clients_max + evictions, config,
            });
            harness.register_all();
            assert.equal(harness.replica.sessions.count, clients_max);
            assert.equal(harness.replica.stats.evictions[EvictionReason.no_session], evictions,
                'the oldest sessions were evicted');
            // An eviction message the replica had no pool message for is not resent: that client
            // learns on its next request. Mark every client without a session as evicted.
            const live = session_clients(harness);
            for (const client of harness.clients) {
                if (!live.has(client.id)) client.evicted = EvictionReason.no_session;
            }
            assert.equal(harness.clients.filter((client) => client.evicted !== 0).length,
                evictions);
            harness.network.loss_percent = 2;
            const workload = new LedgerWorkload(seed, 20);
            await run_workload(harness, workload, 3 * clients_max, 3);
            check_against_model(harness);
            const checkpoints = harness.checkpoints + harness.replica.stats.checkpoints;
            assert(checkpoints >= 3, `several checkpoints (${checkpoints})`);
            const waited = harness.replies_waited + harness.replica.client_replies.writes_waited;
            assert(waited > 0, 'some checkpoint had more changed replies than operations');
            harness.run_until(() => harness.storage.in_flight === 0 &&
                !harness.replica.busy && harness.network.packets.length === 0, 1000);
            const state = harness.ledger.checksum_state();
            const sessions = harness.replica.sessions.reply_headers.slice();
            await harness.crash_restart();
            assert.equal(harness.ledger.checksum_state(), state);
            assert.deepEqual(harness.replica.sessions.reply_headers, sessions);
            assert.equal(harness.replica.stats.replies_lost, 0);
        });
}

// Issue 9, item 2: the state the old assertion left on disk. It fired at a checkpoint trigger
// while the changed replies were being written, so the file held a WAL past the trigger, a
// checkpoint that never became durable and some reply writes done. Crash in exactly that state
// (reply writes waiting for operations), then the restart must replay across the trigger, finish
// the checkpoint, lose no reply, and keep serving the same ledger as the model.
test('replica simulator: a crash while a checkpoint writes many replies reopens and serves',
    async () => {
        const seed = 31;
        const config = { ...config_sim, slot_count: 64, clients_max: 32 };
        const harness = await Harness.create({ seed, clients: 32, config });
        harness.register_all();
        const workload = new LedgerWorkload(seed, 20);
        let checkpoint_before = -1;
        await run_workload(harness, workload, 200, 2, () => {
            const replies = harness.replica.client_replies;
            if (replies.writes_waiting === 0) return false;
            checkpoint_before = harness.replica.checkpoint_op;
            return true;
        });
        check_against_model(harness);
        assert(checkpoint_before >= 0, 'the crash came while reply writes waited');
        assert(harness.replica.checkpoint_op > checkpoint_before, 'the replay checkpointed');
        assert.equal(harness.replica.stats.replies_lost, 0);
    });
