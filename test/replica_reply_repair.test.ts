// A session's reply that a cluster replica cannot read back from its client_replies zone at
// startup (bit rot, a latent sector error) is fetched from a peer (request_reply), checked against
// the checksum its session table expects, and written back to its slot; so a retried request gets
// the very same reply from whichever replica is primary, and is never executed twice. Each case
// builds the broken state directly (one replica's slot damaged after a checkpoint covers the
// reply and the WAL wrapped past its op), runs the cluster and checks the exact end state.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Prng } from '../lib/prng';
import { Zone } from '../lib/storage/zones';
import { Violation, ViolationKind, session_replies_check } from '../lib/testing/cluster_checkers';
import { ClusterFaultAtlas } from '../lib/testing/fault_atlas';
import { Operation, header_size } from '../lib/vsr/constants';
import { HeaderView, cluster_bytes, header_init, seal, seal_empty_body } from '../lib/vsr/header';
import { Command, frame, offsets } from '../lib/vsr/header_layout';
import { connection_none } from '../lib/vsr/network';
import { quorum_replication } from '../lib/vsr/quorums';
import { Status, release_server } from '../lib/vsr/replica';
import type { Replica } from '../lib/vsr/replica';
import { Cluster } from './cluster_harness';
import type { LinkFilter } from './cluster_harness';
import { HeaderValidator, Reason, reason_text } from '../lib/vsr/validate';
import {
    account_event, cluster_sim, config_sim, ids_body, multi_batch_body,
} from './replica_harness';
import type { SimClient } from './replica_harness';

const config = { ...config_sim, slot_count: 32 };

/** Submits one request from `client` and runs until it is answered. */
function request(cluster: Cluster, client: SimClient, operation: number, body: Uint8Array): void {
    const count = client.exchanges.length + 1;
    client.submit(operation, body);
    cluster.run_until(() => client.exchanges.length === count, 20_000);
}

/** The session entry (= client_replies slot) of a client on one replica. */
function entry_of(replica: Replica, client: SimClient): number {
    const words: number[] = [];
    for (let word = 0; word < 4; word++) {
        words.push(Number((client.id >> BigInt(word * 32)) & 0xffff_ffffn));
    }
    const entry = replica.sessions.find(words[0]!, words[1]!, words[2]!, words[3]!);
    assert(entry >= 0, 'the client has a session');
    return entry;
}

/** The bytes of the reply a replica's session holds for an entry (in memory). */
function session_reply(replica: Replica, entry: number): Uint8Array {
    const message = replica.sessions.reply_message(entry);
    assert(message !== -1, 'the session holds its reply');
    const offset = replica.pool.offset(message);
    const size = new DataView(replica.pool.bytes.buffer).getUint32(
        replica.pool.bytes.byteOffset + offset + 96, true);
    return replica.pool.bytes.slice(offset, offset + size);
}

/** The bytes of a replica's client_replies slot on its disk. */
function slot_bytes(cluster: Cluster, replica: number, entry: number, size: number): Uint8Array {
    return cluster.storages[replica]!.peek(Zone.client_replies,
        entry * cluster.config.message_size_max, size);
}

interface Covered {
    cluster: Cluster;
    lost: SimClient;
    busy: SimClient;
    /** The reply `lost` accepted for request 1, as it came. */
    reply: Uint8Array;
    op: number;
    /** Every replica's log lines. */
    lines: string[];
}

/**
 * Three replicas; `lost` creates accounts (request 1); `busy` then commits enough ops that every
 * replica's checkpoint covers that reply (written to its slot) and the WAL wrapped past its op,
 * so a replay cannot rebuild it.
 */
async function covered_by_checkpoint(seed: number): Promise<Covered> {
    const lines: string[] = [];
    const cluster = await Cluster.create({
        seed, replica_count: 3, clients: 2, config, log: (line) => lines.push(line),
    });
    cluster.register_all();
    const [lost, busy] = cluster.clients as [SimClient, SimClient];
    request(cluster, lost, Operation.create_accounts,
        multi_batch_body([account_event(1n), account_event(2n)], 128));
    const op = lost.exchanges[1]!.op;
    const reply = lost.replies.get(1)!;
    for (let index = 0; index < 40; index++) {
        request(cluster, busy, Operation.lookup_accounts, multi_batch_body([ids_body(1n)], 16));
    }
    cluster.run_until(() => cluster.replicas.every((replica) =>
        replica.checkpoint_op > op && replica.commit_min === cluster.replicas[0]!.commit_min &&
        replica.status === Status.normal), 20_000);
    for (const replica of cluster.replicas) {
        assert(replica.op - op > config.slot_count, 'the WAL no longer holds the op');
        const entry = entry_of(replica, lost);
        assert.deepEqual(slot_bytes(cluster, replica.replica, entry, reply.length), reply,
            'every replica wrote the reply to its slot');
    }
    return { cluster, lost, busy, reply, op, lines };
}

/** Damages replica `index`'s slot of `client`: one flipped body bit, or an unreadable sector. */
function damage(cluster: Cluster, index: number, client: SimClient,
    kind: 'bit_flip' | 'latent_error'): void {
    const offset = entry_of(cluster.replicas[index]!, client) * cluster.config.message_size_max;
    const storage = cluster.storages[index]!;
    if (kind === 'bit_flip') storage.flip_bit(Zone.client_replies, offset + header_size + 3);
    else storage.latent_error_set(Zone.client_replies, offset);
}

/** Loses every reply repair message between replicas (request_reply and the answers). */
const repair_blocked: LinkFilter = (from, to, command) => from >= 0 && to >= 0 &&
    (command === Command.request_reply || command === Command.reply);

/**
 * Damages `client`'s slot on the replica that leads the next view, sets `filter` on the network
 * and restarts that replica over the damage: its reply is lost at startup.
 */
async function restart_damaged(cluster: Cluster, client: SimClient,
    kind: 'bit_flip' | 'latent_error', filter: LinkFilter | null):
    Promise<{ next: number; replica: Replica; entry: number }> {
    const next = (cluster.primary() + 1) % 3;
    damage(cluster, next, client, kind);
    cluster.network.filter = filter;
    await cluster.crash(next);
    await cluster.restart(next);
    const replica = cluster.replicas[next]!;
    assert.equal(replica.stats.replies_lost, 1, 'the slot could not be read back');
    const entry = entry_of(replica, client);
    assert.equal(replica.sessions.reply_message(entry), -1);
    assert(replica.reply_repair.is_wanted(entry));
    return { next, replica, entry };
}

/** Crashes the primary and runs until `next` leads a view of its own. */
async function make_primary(cluster: Cluster, next: number): Promise<number> {
    const primary = cluster.primary();
    assert(primary !== -1 && primary !== next);
    await cluster.crash(primary);
    cluster.run_until(() => cluster.primary() === next, 20_000);
    return primary;
}

/** Records every message `client` receives (the bytes, as the client sees them). */
function received_by(client: SimClient): Uint8Array[] {
    const received: Uint8Array[] = [];
    const on_message = client.on_message.bind(client);
    client.on_message = (bytes: Uint8Array): void => {
        received.push(bytes.slice());
        on_message(bytes);
    };
    return received;
}

for (const kind of ['bit_flip', 'latent_error'] as const) {
    test(`reply repair (${kind}): the damaged replica fetches the reply, rewrites its slot and ` +
        'answers the retry with the same bytes as primary', async () => {
        const { cluster, lost, reply, op, lines } = await covered_by_checkpoint(41);
        const { next, replica, entry } = await restart_damaged(cluster, lost, kind, null);
        const said = kind === 'bit_flip' ? 'corrupt' : 'unreadable';
        assert.equal(lines.filter((line) => line.includes(`replica ${next}: warning: zone ` +
            `client_replies slot ${entry} op ${op}: reply ${said}: fetching it from a peer`))
            .length, 1, lines.join('\n'));
        cluster.run_until(() => replica.stats.replies_repaired === 1, 5_000);
        const client = lost.id.toString(16).padStart(32, '0');
        assert(lines.some((line) => line.includes(`replica ${next}: reply of client ` +
            `0x${client} request 1 (op ${op}) repaired from a peer`)), lines.join('\n'));
        assert.deepEqual(session_reply(replica, entry), reply);
        // One peer answered with its own copy (one fetch in flight per slot).
        const served = cluster.replicas.reduce((sum, other) =>
            sum + other.stats_cluster.replies_served, 0);
        assert.equal(served, 1);
        // The fetched reply is written back: the slot on disk holds it again, byte for byte.
        cluster.run_until(() => replica.client_replies.writes_in_flight === 0, 100);
        assert.deepEqual(slot_bytes(cluster, next, entry, reply.length), reply);
        const old_primary = await make_primary(cluster, next);
        await cluster.restart(old_primary);
        const received = received_by(lost);
        const commits = replica.stats.commits;
        const resent = replica.stats.replies_resent;
        lost.network.client_send(lost.index, lost.sent.get(1)!);
        for (let tick = 0; tick < 50; tick++) cluster.tick();
        // The retry reached the primary directly and through each backup (which forwards it):
        // every answer is the original reply, byte for byte.
        assert(received.length >= 1);
        for (const bytes of received) assert.deepEqual(bytes, reply);
        assert.equal(replica.stats.replies_resent - resent, received.length);
        assert.equal(replica.stats.commits, commits, 'never executed twice');
        assert.equal(lost.evicted, 0);
        assert(replica.stats_cluster.replies_requested >= 1);
        assert.equal(replica.stats_cluster.replies_served, 0);
        assert.equal(replica.stats_cluster.replies_refused, 0);
    });
}

test('reply repair: while the reply is missing the retry is dropped (never re-run, never ' +
    'evicted) and answered once the fetch succeeds', async () => {
    const { cluster, lost, reply } = await covered_by_checkpoint(42);
    // No reply repair gets through until the filter is lifted.
    const { next, replica, entry } = await restart_damaged(cluster, lost, 'bit_flip',
        repair_blocked);
    const old_primary = await make_primary(cluster, next);
    await cluster.restart(old_primary);
    const received = received_by(lost);
    const commits = replica.stats.commits;
    const dropped = replica.stats.requests_dropped;
    for (let attempt = 0; attempt < 3; attempt++) {
        lost.network.client_send(lost.index, lost.sent.get(1)!);
        for (let tick = 0; tick < 60; tick++) cluster.tick();
    }
    assert.equal(received.length, 0, 'no answer while the reply is missing');
    assert.equal(lost.evicted, 0);
    assert.equal(replica.stats.commits, commits, 'never executed twice');
    // Each retry reached the primary directly, and through each backup that was serving: every
    // drop since is one of a retry whose reply is missing.
    assert(replica.stats_cluster.retries_reply_missing >= 3);
    assert.equal(replica.stats.requests_dropped - dropped,
        replica.stats_cluster.retries_reply_missing);
    assert.equal(replica.sessions.reply_message(entry), -1);
    // Fetches were sent and retried with backoff, one per slot at a time.
    assert(replica.stats_cluster.replies_requested >= 2);
    cluster.network.filter = null;
    cluster.run_until(() => replica.stats.replies_repaired === 1, 5_000);
    cluster.run_until(() => replica.client_replies.writes_in_flight === 0, 100);
    assert.deepEqual(slot_bytes(cluster, next, entry, reply.length), reply);
    lost.network.client_send(lost.index, lost.sent.get(1)!);
    for (let tick = 0; tick < 50; tick++) cluster.tick();
    assert(received.length >= 1);
    for (const bytes of received) assert.deepEqual(bytes, reply);
    assert.equal(replica.stats.commits, commits);
    assert.equal(lost.evicted, 0);
});

/** A message in `replica`'s pool holding `bytes` (the caller unrefs it). */
function message_of(replica: Replica, bytes: Uint8Array): number {
    const message = replica.pool.acquire();
    assert(message !== -1);
    replica.pool.bytes.set(bytes, replica.pool.offset(message));
    return message;
}

/** A sealed request_reply from replica `from` for (client, op, checksum). */
function request_reply_bytes(from: number, view: number, client: bigint, op: bigint,
    checksum: Uint8Array): Uint8Array {
    const bytes = new Uint8Array(header_size);
    const header = header_init(new HeaderView(), bytes, 0, Command.request_reply, header_size,
        release_server);
    header.copy16_from(frame.cluster, cluster_bytes(cluster_sim), 0);
    header.view = view;
    header.replica = from;
    header.set_u128_bigint(offsets.request_reply.reply_client, client);
    header.set_limb(offsets.request_reply.reply_op, 0, Number(op & 0xffff_ffffn));
    header.set_limb(offsets.request_reply.reply_op, 1, Number(op >> 32n));
    header.copy16_from(offsets.request_reply.reply_checksum, checksum, 0);
    seal_empty_body(header);
    return bytes;
}

test('reply repair: a peer answers only the checksum its session holds; the asker takes only ' +
    'the reply its session expects', async () => {
    const { cluster, lost, busy, reply, op } = await covered_by_checkpoint(43);
    const primary = cluster.primary();
    const { next, replica, entry } = await restart_damaged(cluster, lost, 'latent_error',
        repair_blocked);
    // A healthy peer asked with another checksum says nothing; with the right one it answers.
    const peer = cluster.replicas[primary]!;
    const served = peer.stats_cluster.replies_served;
    const wrong = reply.slice(0, 16);
    wrong[0] = wrong[0]! ^ 1;
    for (const [checksum, answers] of [[wrong, 0], [reply.subarray(0, 16), 1]] as const) {
        const message = message_of(peer, request_reply_bytes(next, peer.view, lost.id, BigInt(op),
            checksum));
        peer.on_message(connection_none, message);
        peer.pool.unref(message);
        assert.equal(peer.stats_cluster.replies_served, served + answers);
    }
    // A forged reply (its body changed, resealed: valid checksums, another header checksum),
    // and a genuine reply no slot here wants (busy's latest), are refused.
    const forged = reply.slice();
    forged[header_size + 8] = forged[header_size + 8]! ^ 0xff;
    seal(new HeaderView().attach(forged, 0));
    assert.equal(new HeaderValidator(cluster_sim).message(forged, 0, forged.length), Reason.ok);
    const busy_reply = busy.replies.get(busy.request_number)!;
    for (const bytes of [forged, busy_reply]) {
        const message = message_of(replica, bytes);
        replica.on_message(connection_none, message);
        replica.pool.unref(message);
    }
    assert.equal(replica.stats_cluster.replies_refused, 2);
    assert.equal(replica.stats.replies_repaired, 0);
    assert.equal(replica.sessions.reply_message(entry), -1);
    assert(replica.reply_repair.is_wanted(entry));
    // The genuine reply is taken, written back, and no longer wanted; a second copy is refused.
    for (const expected_refused of [2, 3]) {
        const message = message_of(replica, reply);
        replica.on_message(connection_none, message);
        replica.pool.unref(message);
        assert.equal(replica.stats_cluster.replies_refused, expected_refused);
    }
    assert.equal(replica.stats.replies_repaired, 1);
    assert(!replica.reply_repair.is_wanted(entry));
    assert.equal(replica.reply_repair.wanted_count, 0);
    assert.deepEqual(session_reply(replica, entry), reply);
    cluster.run_until(() => replica.client_replies.writes_in_flight === 0, 100);
    assert.deepEqual(slot_bytes(cluster, next, entry, reply.length), reply);
    // Nothing is fetched any more.
    const requested = replica.stats_cluster.replies_requested;
    for (let tick = 0; tick < 500; tick++) cluster.tick();
    assert.equal(replica.stats_cluster.replies_requested, requested);
    assert(!replica.reply_repair.timeout.ticking);
});

test('request_reply validation: a client and an op of a reply, each with its reason', () => {
    const validator = new HeaderValidator(cluster_sim);
    const checksum = new Uint8Array(16).fill(7);
    const cases = [
        [request_reply_bytes(1, 3, 5n, 9n, checksum), Reason.ok],
        [request_reply_bytes(1, 3, 0n, 9n, checksum), Reason.client_zero],
        [request_reply_bytes(1, 3, 5n, 0n, checksum), Reason.reply_op_zero],
        [request_reply_bytes(1, 3, 5n, 2n ** 53n, checksum), Reason.op_beyond_max],
        [request_reply_bytes(6, 3, 5n, 9n, checksum), Reason.replica_out_of_range],
    ] as const;
    for (const [bytes, reason] of cases) {
        assert.equal(validator.message(bytes, 0, bytes.length), reason,
            reason_text[validator.message(bytes, 0, bytes.length)]);
    }
});

// ---------------------------------------------------------------------- the simulator's pieces

test('fault atlas: each client replies slot is open to faults on quorum_replication - 1 ' +
    'replicas, and nothing else outside the WAL is', () => {
    const message_size_max = 16 * 1024;
    for (let replica_count = 1; replica_count <= 6; replica_count++) {
        const atlas = new ClusterFaultAtlas(new Prng(77 + replica_count), replica_count, 32,
            message_size_max, 8);
        for (let slot = 0; slot < 8; slot++) {
            assert.equal(atlas.reply_slot_faulty_count(slot),
                quorum_replication(replica_count) - 1);
            for (let replica = 0; replica < replica_count; replica++) {
                const filter = atlas.filter(replica);
                const at = slot * message_size_max;
                assert.equal(filter.fault_allowed(Zone.client_replies, at, 4096),
                    atlas.reply_faulty(replica, slot));
                if (slot < 7) {
                    // A range across two slots (a misdirected write) needs both open.
                    const both = atlas.reply_faulty(replica, slot) &&
                        atlas.reply_faulty(replica, slot + 1);
                    assert.equal(filter.fault_allowed(Zone.client_replies, at,
                        2 * message_size_max), both);
                }
                assert.equal(filter.fault_allowed(Zone.grid, at, 4096), false);
                assert.equal(filter.fault_allowed(Zone.superblock, 0, 4096), false);
            }
        }
    }
});

test('session replies check: a replica holding another reply than its client accepted is a ' +
    'violation; the same bytes, or a register committed again, are not', () => {
    const reply_of = (request: number, op: number, body: number): Uint8Array => {
        const bytes = new Uint8Array(header_size + 16);
        const header = header_init(new HeaderView(), bytes, 0, Command.reply, bytes.length,
            release_server);
        header.set_u128_bigint(offsets.reply.client, 5n);
        header.set_u32(offsets.reply.request, request);
        header.set_u64(offsets.reply.op, op);
        header.set_u64(offsets.reply.commit, op);
        bytes[header_size] = body;
        seal(header);
        return bytes;
    };
    const check = (held: Uint8Array, accepted: Uint8Array, request: number): void => {
        const pool = { bytes: held, offset: (): number => 0 };
        const sessions = {
            capacity: 1, session: (): number => 1, reply_message: (): number => 0,
        };
        const client = {
            index: 0, id: 5n, sent: new Map(), exchanges: [],
            replies: new Map([[request, accepted]]),
        };
        session_replies_check(2, sessions, pool, [client]);
    };
    check(reply_of(3, 40, 1), reply_of(3, 40, 1), 3);
    assert.throws(() => check(reply_of(3, 40, 2), reply_of(3, 40, 1), 3), (error: unknown) =>
        error instanceof Violation && error.kind === ViolationKind.reply && error.op === 40 &&
        error.replica === 2);
    // Request 0 at another op: the register committed again after its session was evicted.
    check(reply_of(0, 41, 2), reply_of(0, 12, 1), 0);
    // A reply the client never accepted is not compared.
    check(reply_of(4, 50, 2), reply_of(3, 40, 1), 3);
});

test('reply repair: a peer that never answers is passed over for the next one', async () => {
    const { cluster, lost, reply } = await covered_by_checkpoint(44);
    const primary = cluster.primary();
    const next_expected = (primary + 1) % 3;
    // The peer the first round asks (reply_repair.ts: entry + round picks the peer).
    const first_entry = entry_of(cluster.replicas[next_expected]!, lost);
    const silent = (next_expected + 1 + (1 + first_entry) % 2) % 3;
    // Every request_reply to `silent` is lost on the way.
    const { next, replica, entry } = await restart_damaged(cluster, lost, 'bit_flip',
        (from, to, command) => to === silent && command === Command.request_reply);
    assert.equal(next, next_expected);
    assert.equal(entry, first_entry);
    const answered = 3 - next - silent;
    assert(answered !== silent && answered !== next);
    const served = cluster.replicas[answered]!.stats_cluster.replies_served;
    cluster.run_until(() => replica.stats.replies_repaired === 1, 5_000);
    assert.equal(cluster.replicas[answered]!.stats_cluster.replies_served, served + 1);
    assert.equal(cluster.replicas[silent]!.stats_cluster.replies_served, 0);
    // The first round's request was lost; the second asked the other peer.
    assert.equal(replica.stats_cluster.replies_requested, 2);
    assert.deepEqual(session_reply(replica, entry), reply);
    assert(!replica.reply_repair.timeout.ticking);
});

test('reply repair: a slot whose session commits a newer reply stops wanting the old one',
    async () => {
        const { cluster, lost, op } = await covered_by_checkpoint(45);
        const { replica, entry } = await restart_damaged(cluster, lost, 'latent_error',
            repair_blocked);
        assert.equal(replica.replies_missing, 1);
        // The client received reply 1 before; its request 2 commits everywhere.
        request(cluster, lost, Operation.lookup_accounts, multi_batch_body([ids_body(1n)], 16));
        cluster.run_until(() => replica.commit_min >= lost.exchanges[2]!.op, 5_000);
        assert(lost.exchanges[2]!.op > op);
        assert.equal(replica.replies_missing, 0, 'the newer reply is in memory');
        assert.deepEqual(session_reply(replica, entry), lost.replies.get(2));
        // The next round lets the slot go, and the timeout stops: no fetch is sent again.
        cluster.run_until(() => !replica.reply_repair.timeout.ticking, 1_000);
        assert.equal(replica.reply_repair.wanted_count, 0);
        assert(!replica.reply_repair.is_wanted(entry));
        const requested = replica.stats_cluster.replies_requested;
        for (let tick = 0; tick < 300; tick++) cluster.tick();
        assert.equal(replica.stats_cluster.replies_requested, requested);
        assert.equal(replica.stats.replies_repaired, 0);
    });
