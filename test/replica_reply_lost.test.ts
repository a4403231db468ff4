// A session's cached reply that cannot be read back from the client_replies zone at startup (bit
// rot, a latent sector error), on a single replica that has no peer to repair it from. If the WAL
// replay rebuilds the reply (the op is after the checkpoint), nothing was lost and nothing is
// said. Otherwise the reply is lost for good: the startup log names zone, slot, op and client;
// the session stays; a retry of exactly that request is answered with an eviction (no_session),
// so the client gets a clear error instead of retrying forever, and the request is never
// executed twice. A client that had received the reply before the crash carries on untouched.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Zone } from '../lib/storage/zones';
import { Op } from '../lib/testing/ledger_model';
import { EvictionReason, header_size } from '../lib/vsr/constants';
import {
    Harness, account_event, config_sim, ids_body, multi_batch_body, request_and_wait, settle,
} from './replica_harness';
import type { SimClient } from './replica_harness';

const config = { ...config_sim, slot_count: 32 };
type Damage = 'bit_flip' | 'latent_error';




function lookup(harness: Harness, client: SimClient): void {
    request_and_wait(harness, client, Op.lookup_accounts, multi_batch_body([ids_body(1n)], 16));
}


/** The session entry (= client_replies slot) of a client. */
function entry_of(harness: Harness, client: SimClient): number {
    const words: number[] = [];
    for (let word = 0; word < 4; word++) {
        words.push(Number((client.id >> BigInt(word * 32)) & 0xffff_ffffn));
    }
    const entry = harness.replica.sessions.find(words[0]!, words[1]!, words[2]!, words[3]!);
    assert(entry >= 0, 'the client has a session');
    return entry;
}

/** Damages the reply stored in a client's slot: one flipped body bit, or an unreadable sector. */
function damage(harness: Harness, client: SimClient, kind: Damage): void {
    const offset = entry_of(harness, client) * config.message_size_max;
    const storage = harness.storage;
    if (kind === 'bit_flip') storage.flip_bit(Zone.client_replies, offset + header_size + 3);
    else storage.latent_error_set(Zone.client_replies, offset);
}

/**
 * `lost` registers and creates accounts (request 1, op returned); `busy` then commits enough ops
 * that a checkpoint covers that reply (written to the zone) and the WAL wraps past it.
 */
async function covered_by_checkpoint(seed: number, lines: string[]):
    Promise<{ harness: Harness; lost: SimClient; busy: SimClient; op: number }> {
    const harness = await Harness.create({
        seed, clients: 2, config, log: (line) => lines.push(line),
    });
    harness.register_all();
    const [lost, busy] = harness.clients as [SimClient, SimClient];
    request_and_wait(harness, lost, Op.create_accounts,
        multi_batch_body([account_event(1n), account_event(2n)], 128));
    const op = lost.exchanges[1]!.op;
    for (let index = 0; index < 40; index++) lookup(harness, busy);
    assert(harness.replica.checkpoint_op > op, 'a checkpoint covers the reply');
    assert(harness.replica.op - op > config.slot_count, 'the WAL no longer holds its op');
    return { harness, lost, busy, op };
}

for (const kind of ['bit_flip', 'latent_error'] as const) {
    test(`reply lost (${kind}): logged with zone, slot and op; a retry is evicted, not re-run`,
        async () => {
            const lines: string[] = [];
            const { harness, lost, busy, op } = await covered_by_checkpoint(31, lines);
            const slot = entry_of(harness, lost);
            damage(harness, lost, kind);
            await harness.crash_restart();
            const stats = harness.replica.stats;
            assert.equal(stats.replies_lost, 1);
            const warning = lines.filter((line) => line.includes('zone client_replies'));
            assert.equal(warning.length, 1, lines.join('\n'));
            assert.match(warning[0]!, new RegExp(`zone client_replies slot ${slot} op ${op}: ` +
                `reply ${kind === 'bit_flip' ? 'corrupt' : 'unreadable'}`));
            assert.match(warning[0]!, new RegExp(`client 0x${lost.id.toString(16)
                .padStart(32, '0')} is evicted \\(no_session\\) if it retries request 1`));
            // The session itself survives the restart (it is a function of the committed log).
            assert.equal(harness.replica.sessions.count, 2);
            // The retry of request 1 (its reply never reached the client): an eviction, not a
            // second execution and not a silent drop.
            const commits = stats.commits;
            const dropped = stats.requests_dropped;
            lost.network.client_send(lost.index, lost.sent.get(1)!);
            settle(harness, 20);
            assert.equal(lost.evicted, EvictionReason.no_session);
            assert.equal(stats.evictions[EvictionReason.no_session], 1);
            assert.equal(stats.commits, commits, 'not executed again');
            assert.equal(stats.requests_dropped, dropped, 'answered, not dropped');
            assert.equal(stats.replies_resent, 0);
            // Other clients are unaffected.
            lookup(harness, busy);
            assert.equal(busy.evicted, 0);
        });
}

test('reply lost: a client that received it before the crash carries on in its session',
    async () => {
        const lines: string[] = [];
        const { harness, lost, op } = await covered_by_checkpoint(32, lines);
        damage(harness, lost, 'bit_flip');
        await harness.crash_restart();
        assert.equal(harness.replica.stats.replies_lost, 1);
        // Request 2 chains to reply 1's context, which the session table still holds.
        lookup(harness, lost);
        assert.equal(lost.evicted, 0);
        assert(lost.exchanges[2]!.op > op);
        // Its new reply is in memory again: a retry of request 2 is answered from it.
        lost.network.client_send(lost.index, lost.sent.get(2)!);
        settle(harness, 20);
        assert.equal(harness.replica.stats.replies_resent, 1);
        assert.equal(lost.evicted, 0);
    });

test('reply lost: a lost register reply evicts the retried register', async () => {
    const lines: string[] = [];
    const harness = await Harness.create({
        seed: 33, clients: 2, config, log: (line) => lines.push(line),
    });
    harness.register_all();
    const [lost, busy] = harness.clients as [SimClient, SimClient];
    for (let index = 0; index < 40; index++) lookup(harness, busy);
    assert(harness.replica.checkpoint_op > lost.exchanges[0]!.op);
    damage(harness, lost, 'latent_error');
    await harness.crash_restart();
    assert.equal(harness.replica.stats.replies_lost, 1);
    assert(lines.some((line) => /retries request 0/.test(line)), lines.join('\n'));
    const commits = harness.replica.stats.commits;
    lost.network.client_send(lost.index, lost.sent.get(0)!);
    settle(harness, 20);
    assert.equal(lost.evicted, EvictionReason.no_session);
    assert.equal(harness.replica.stats.commits, commits, 'not registered twice');
});

test('reply not lost: the replay rebuilds a reply newer than the checkpoint, silently',
    async () => {
        const lines: string[] = [];
        const { harness, lost } = await covered_by_checkpoint(34, lines);
        // Request 2 commits after the checkpoint: its reply is not in the zone yet, the slot
        // holds request 1's reply, which the checkpoint's table names. Damage that one.
        lookup(harness, lost);
        const op = lost.exchanges[2]!.op;
        assert(harness.replica.checkpoint_op < op, 'no checkpoint covers request 2');
        damage(harness, lost, 'bit_flip');
        await harness.crash_restart();
        assert(harness.replica.checkpoint_op < op);
        assert.equal(harness.replica.stats.replies_lost, 0);
        assert(!lines.some((line) => line.includes('zone client_replies')), lines.join('\n'));
        const commits = harness.replica.stats.commits;
        // The client's on_message asserts that the repeated reply is byte-identical.
        lost.network.client_send(lost.index, lost.sent.get(2)!);
        settle(harness, 20);
        assert.equal(harness.replica.stats.replies_resent, 1);
        assert.equal(harness.replica.stats.commits, commits);
        assert.equal(lost.evicted, 0);
    });
