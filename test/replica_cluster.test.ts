// VSR across replicas, case by case (internals.md §7-§9): normal operation on 2-6 replicas, the
// primary crashing with uncommitted prepares, a backup with a gap, two view changes in a row, a
// partitioned old primary that comes back. Every case checks that no two replicas commit
// different prepares at one op and that every acknowledged request is served after the faults.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Operation, header_size } from '../lib/vsr/constants';
import { Zone } from '../lib/storage/zones';
import { Command, frame, offsets } from '../lib/vsr/header_layout';
import { HeaderView, cluster_bytes, header_init, seal_empty_body } from '../lib/vsr/header';
import { HeaderValidator, Reason } from '../lib/vsr/validate';
import { Status, release_server } from '../lib/vsr/replica';
import { Cluster } from './cluster_harness';
import { VsrState } from '../lib/vsr/superblock';
import {
    account_event, cluster_sim, config_sim, ids_body, multi_batch_body,
} from './replica_harness';

const create_accounts = Operation.create_accounts;
const lookup_accounts = Operation.lookup_accounts;

function accounts_body(first: bigint, count: number): Uint8Array {
    const body = new Uint8Array(128 * count);
    for (let index = 0; index < count; index++) {
        body.set(account_event(first + BigInt(index)), index * 128);
    }
    return body;
}

/** Submits `count` create_accounts requests per client and runs until all are answered. */
function load(cluster: Cluster, count: number, first: bigint, ticks_max = 40_000): void {
    const target = cluster.clients.map((client) => client.exchanges.length + count);
    cluster.clients.forEach((client, index) => {
        for (let request = 0; request < count; request++) {
            const id = first + BigInt(index * 1000 + request * 2);
            client.submit(create_accounts, multi_batch_body([accounts_body(id, 2)], 128));
        }
    });
    cluster.run_until(() => cluster.clients.every((client, index) =>
        client.exchanges.length >= target[index]!), ticks_max);
}

function settle_all(cluster: Cluster, ticks = 2000): void {
    cluster.run_until(() => {
        const commit = Math.max(...cluster.replicas.map((replica) => replica.commit_min));
        return cluster.replicas.every((replica, index) => !cluster.up[index] ||
            (replica.status === Status.normal && replica.commit_min === commit));
    }, ticks);
}

for (const replica_count of [2, 3, 4, 5, 6]) {
    test(`cluster of ${replica_count}: normal operation commits the same log everywhere`,
        async () => {
            const cluster = await Cluster.create({
                seed: replica_count, replica_count, clients: 2,
            });
            cluster.register_all();
            load(cluster, 5, 1000n);
            settle_all(cluster);
            const commit = cluster.replicas[0]!.commit_min;
            assert(commit >= 12, `commit ${commit}`);
            for (const replica of cluster.replicas) assert.equal(replica.commit_min, commit);
            // Replica 0 starts every cluster with a view change (a restarted primary never
            // resumes its view): view 1's primary serves.
            assert.equal(cluster.primary(), 1 % replica_count);
        });
}

test('cluster of 3: the primary crashes; a view change elects the next, nothing is lost',
    async () => {
        const cluster = await Cluster.create({ seed: 7, replica_count: 3, clients: 2 });
        cluster.register_all();
        load(cluster, 3, 1000n);
        const primary = cluster.primary();
        await cluster.crash(primary);
        load(cluster, 3, 5000n);
        assert.equal(cluster.primary(), (primary + 1) % 3);
        await cluster.restart(primary);
        load(cluster, 2, 9000n);
        settle_all(cluster, 5000);
        const lookup = cluster.clients[0]!;
        lookup.submit(lookup_accounts, multi_batch_body([ids_body(1000n, 5000n, 9000n)], 16));
        cluster.run_until(() => lookup.exchanges.length === 1 + 3 + 3 + 2 + 1, 5000);
        const reply = lookup.exchanges[lookup.exchanges.length - 1]!.reply_body;
        assert.equal(reply.length, 3 * 128 + 128, 'every account created is found');
    });


/** Every up replica serves the same accounts: a lookup through the primary finds them all. */
function lookup_all(cluster: Cluster, ids: bigint[]): void {
    const client = cluster.clients[0]!;
    const before = client.exchanges.length;
    client.submit(lookup_accounts, multi_batch_body([ids_body(...ids)], 16));
    cluster.run_until(() => client.exchanges.length === before + 1, 20_000);
    const reply = client.exchanges[before]!.reply_body;
    assert.equal(reply.length, ids.length * 128 + 128, 'every acknowledged account is served');
}

test('cluster of 3: a primary crashes with prepares no backup acknowledged; the view drops them',
    async () => {
        const cluster = await Cluster.create({ seed: 11, replica_count: 3, clients: 1 });
        cluster.register_all();
        load(cluster, 2, 100n);
        const primary = cluster.primary();
        const backup = (primary + 1) % 3;
        // The next prepares reach nobody: the primary holds them alone, uncommitted.
        cluster.network.filter = (from, to, command) =>
            from === primary && to >= 0 && command === Command.prepare;
        const client = cluster.clients[0]!;
        client.submit(create_accounts, multi_batch_body([accounts_body(500n, 2)], 128));
        cluster.run_until(() => cluster.replicas[primary]!.op > cluster.replicas[backup]!.op,
            1000);
        await cluster.crash(primary);
        cluster.network.filter = null;
        // The client retries; the new primary has never seen the request and executes it once.
        cluster.run_until(() => client.exchanges.length === 4, 20_000);
        await cluster.restart(primary);
        settle_all(cluster, 10_000);
        // The old primary's unreplicated op was cut: every replica holds the new view's log.
        const op = cluster.replicas[backup]!.op;
        for (const replica of cluster.replicas) assert.equal(replica.op, op);
        lookup_all(cluster, [100n, 101n, 500n, 501n]);
    });

test('cluster of 3: a backup that missed prepares repairs the gap from the primary', async () => {
    const cluster = await Cluster.create({ seed: 12, replica_count: 3, clients: 2 });
    cluster.register_all();
    cluster.network.filter = (from, to, command) => to === 2 && command === Command.prepare;
    load(cluster, 6, 100n);
    assert(cluster.replicas[2]!.op < cluster.replicas[0]!.op, 'replica 2 has a gap');
    cluster.network.filter = null;
    load(cluster, 1, 900n);
    settle_all(cluster, 10_000);
    assert.equal(cluster.replicas[2]!.op, cluster.replicas[0]!.op);
    assert(cluster.replicas[2]!.stats_cluster.repairs_requested > 0);
    // Replica 2 can now carry the cluster with replica 1 alone.
    await cluster.crash(0);
    load(cluster, 1, 2000n);
    lookup_all(cluster, [100n, 101n, 1100n, 1101n, 900n, 2000n]);
});

test('cluster of 3: two view changes in a row (the next primary dies before it serves)',
    async () => {
        const cluster = await Cluster.create({ seed: 13, replica_count: 3, clients: 1 });
        cluster.register_all();
        load(cluster, 2, 100n);
        const first = cluster.primary();
        const second = (first + 1) % 3;
        const third = (first + 2) % 3;
        await cluster.crash(first);
        // The next primary dies as the view change starts.
        cluster.run_until(() => cluster.replicas[third]!.status === Status.view_change, 5000);
        await cluster.crash(second);
        await cluster.restart(first);
        // The other two move on past the dead primary's view.
        load(cluster, 2, 300n, 60_000);
        assert(cluster.primary() !== second, cluster.describe());
        await cluster.restart(second);
        settle_all(cluster, 20_000);
        lookup_all(cluster, [100n, 101n, 102n, 103n, 300n, 301n, 302n, 303n]);
    });

test('cluster of 3: a partitioned old primary comes back and follows the new view',
    async () => {
        const cluster = await Cluster.create({ seed: 14, replica_count: 3, clients: 1 });
        cluster.register_all();
        load(cluster, 2, 100n);
        const old = cluster.primary();
        const view = cluster.replicas[old]!.view;
        // The primary is cut off from the replicas (clients still reach it).
        cluster.network.filter = (from, to) =>
            (from === old && to >= 0) || (to === old && from >= 0);
        load(cluster, 2, 300n, 60_000);
        const next = cluster.primary();
        assert(next !== old && cluster.replicas[next]!.view > view);
        assert.equal(cluster.replicas[old]!.view, view, 'the old primary is still in its view');
        cluster.network.filter = null;
        settle_all(cluster, 20_000);
        assert.equal(cluster.replicas[old]!.view, cluster.replicas[next]!.view);
        assert.equal(cluster.replicas[old]!.op, cluster.replicas[next]!.op);
        await cluster.crash(next);
        load(cluster, 1, 700n, 60_000);
        lookup_all(cluster, [100n, 101n, 300n, 301n, 700n]);
    });

/**
 * Five replicas: the primary's next prepare reaches only `holders` (which write it: two of the
 * five, no replication quorum), then the primary dies. The first holder's copy is marked
 * damaged and dropped from its memory, as a read back after a cache miss that failed its
 * checksum leaves it. One backup's do_view_change is
 * held back until the new primary has a view-change quorum, so that the quorum is the new
 * primary, the first holder and one more.
 */
async function uncommitted_damaged(seed: number, holders_count: number): Promise<{
    cluster: Cluster, primary_next: number, damaged: number, lines: string[],
}> {
    const lines: string[] = [];
    const cluster = await Cluster.create({
        seed, replica_count: 5, clients: 1, log: (line) => lines.push(line),
    });
    cluster.register_all();
    load(cluster, 2, 100n);
    const primary = cluster.primary();
    const primary_next = (primary + 1) % 5;
    // The other three backups in index order: the lowest holds a damaged copy (it is the
    // replica a view change takes the log of, among equal logs), the last is held back.
    const others = [2, 3, 4].map((step) => (primary + step) % 5).sort((a, b) => a - b);
    const holders = others.slice(0, holders_count);
    const held_back = others[2]!;
    cluster.network.filter = (from, to, command) => from === primary && to >= 0 &&
        command === Command.prepare && !holders.includes(to);
    const client = cluster.clients[0]!;
    client.submit(create_accounts, multi_batch_body([accounts_body(500n, 2)], 128));
    const op = cluster.replicas[primary]!.op + 1;
    const oks = holders.map((holder) => cluster.replicas[holder]!.stats_cluster.prepare_oks_sent);
    // Every holder has it durable: it acknowledged it.
    cluster.run_until(() => holders.every((holder, index) =>
        cluster.replicas[holder]!.stats_cluster.prepare_oks_sent > oks[index]! &&
        cluster.replicas[holder]!.op === op), 1000);
    for (const holder of holders) assert.equal(cluster.replicas[holder]!.op, op);
    await cluster.crash(primary);
    // Damaged on disk and gone from memory, as when a read back (a cache miss) failed.
    const damaged = cluster.replicas[holders[0]!]!;
    damaged.journal.slot_damaged(op % damaged.journal.slot_count, op);
    (damaged as unknown as { cache_release(op: number): void }).cache_release(op);
    let quorum_seen = false;
    const lines_before = lines.length;
    cluster.network.filter = (from, _to, command) => {
        quorum_seen ||= lines.slice(lines_before).some((line) =>
            line.includes('no nack quorum') || line.includes('do_view_change quorum'));
        return from === held_back && command === Command.do_view_change && !quorum_seen;
    };
    return { cluster, primary_next, damaged: holders[0]!, lines };
}

test('cluster of 5: an uncommitted op whose one copy is damaged is cut by a nack quorum',
    async () => {
        const { cluster, primary_next, lines } = await uncommitted_damaged(21, 1);
        // The client retries its request; the view cuts the op and executes the retry anew.
        const client = cluster.clients[0]!;
        cluster.run_until(() => client.exchanges.length === 4, 30_000);
        const next = cluster.replicas[primary_next]!;
        assert(lines.some((line) => line.includes('no nack quorum')),
            `the quorum without the held-back vote could not decide\n${lines.join('\n')}`);
        assert.equal(next.stats_cluster.ops_nacked, 1, lines.join('\n'));
        assert(lines.some((line) => /ops \d+\.\.\d+ cut \(a nack quorum/.test(line)));
        cluster.network.filter = null;
        settle_all(cluster, 10_000);
        lookup_all(cluster, [100n, 101n, 500n, 501n]);
    });

test('cluster of 5: a view change takes an uncommitted op from a voter whose copy is intact',
    async () => {
        const { cluster, primary_next, damaged, lines } = await uncommitted_damaged(22, 2);
        const client = cluster.clients[0]!;
        cluster.run_until(() => client.exchanges.length === 4, 30_000);
        const next = cluster.replicas[primary_next]!;
        // The damaged holder's log was chosen; its op was kept, not cut: the second holder's
        // copy went to the new primary.
        assert(lines.some((line) => line.includes(`log of replica ${damaged} `)), lines.join('\n'));
        assert.equal(next.stats_cluster.ops_nacked, 0, lines.join('\n'));
        assert(!lines.some((line) => line.includes('no nack quorum')));
        assert(next.stats_cluster.repairs_requested > 0);
        cluster.network.filter = null;
        settle_all(cluster, 10_000);
        lookup_all(cluster, [100n, 101n, 500n, 501n]);
    });

/** Damages a WAL slot whole on a stopped replica: its prepare and its redundant header. */
function rot_slot(cluster: Cluster, replica: number, slot: number): void {
    cluster.storages[replica]!.flip_bit(Zone.wal_prepares,
        slot * cluster.config.message_size_max + 300);
    cluster.storages[replica]!.flip_bit(Zone.wal_headers, slot * 256 + 100);
}

test('cluster of 2: a backup restarts in recovering_head after its primary left the view; ' +
    'the old primary\'s start_view brings it back and the next view forms', async () => {
    const lines: string[] = [];
    const cluster = await Cluster.create({
        seed: 23, replica_count: 2, clients: 1, log: (line) => lines.push(line),
    });
    cluster.register_all();
    load(cluster, 2, 100n);
    const primary = cluster.primary();
    const backup = 1 - primary;
    // The backup takes the next prepare, but its acknowledgements never arrive: the op stays
    // uncommitted, and the primary hears no quorum.
    let cut_off = false;
    cluster.network.filter = (from, _to, command) => from === backup ?
        command !== Command.start_view_change : cut_off;
    const client = cluster.clients[0]!;
    const op = cluster.replicas[primary]!.op + 1;
    client.submit(create_accounts, multi_batch_body([accounts_body(500n, 2)], 128));
    cluster.run_until(() => cluster.replicas[backup]!.op === op, 1000);
    // Then it hears nothing either and votes to leave the view; with its vote the primary
    // moves to the next view, whose primary is the backup.
    cut_off = true;
    cluster.run_until(() => cluster.replicas[primary]!.status === Status.view_change, 5000);
    assert.equal(cluster.replicas[backup]!.status, Status.normal, cluster.describe());
    await cluster.crash(backup);
    // Its head prepare and the slot's redundant header rot while it is down: it cannot even
    // say which op the slot held, so it cannot prove its head at restart.
    const slot = op % cluster.config.slot_count;
    rot_slot(cluster, backup, slot);
    await cluster.restart(backup);
    assert.equal(cluster.replicas[backup]!.status, Status.recovering_head);
    cluster.network.filter = null;
    // Only the old primary's log (of the view it led) can bring the backup back; then the
    // next view forms and the client's request commits.
    cluster.run_until(() => client.exchanges.length === 4, 30_000);
    settle_all(cluster, 10_000);
    assert.equal(cluster.primary(), backup, cluster.describe());
    assert(lines.some((line) => line.includes(`replica ${backup}: zone wal slot `)));
    lookup_all(cluster, [100n, 101n, 102n, 103n, 500n, 501n]);
});

test('cluster of 2: the primary restarts unable to prove its head; its uncertain vote and the ' +
    'backup\'s form the next view, and the op it lost is repaired, not denied', async () => {
    const lines: string[] = [];
    const cluster = await Cluster.create({
        seed: 24, replica_count: 2, clients: 1, log: (line) => lines.push(line),
    });
    cluster.register_all();
    load(cluster, 3, 100n);
    const primary = cluster.primary();
    const backup = 1 - primary;
    const view = cluster.replicas[primary]!.view;
    const head = cluster.replicas[primary]!.op;
    settle_all(cluster);
    assert.equal(cluster.replicas[backup]!.op, head, cluster.describe());
    await cluster.crash(primary);
    // Its head prepare (committed: both replicas hold it) and its redundant header rot.
    rot_slot(cluster, primary, head % cluster.config.slot_count);
    await cluster.restart(primary);
    const restarted = cluster.replicas[primary]!;
    assert.equal(restarted.status, Status.recovering_head, cluster.describe());
    assert(restarted.op < head, `the restarted head ${restarted.op} is below ${head}`);
    // The backup alone cannot form a view (2 votes needed): the restarted replica votes with
    // an uncertain head, which denies nothing above its op, and the backup's log is chosen.
    cluster.run_until(() => cluster.primary() === backup &&
        cluster.replicas[primary]!.status === Status.normal &&
        cluster.replicas[primary]!.op >= head, 30_000);
    assert(cluster.replicas[backup]!.view > view, cluster.describe());
    assert.equal(cluster.replicas[backup]!.stats_cluster.ops_nacked, 0);
    assert(lines.some((line) => line.includes(`replica ${primary}: zone wal slot `)));
    assert(lines.some((line) => line.includes(`log of replica ${backup} `)), lines.join('\n'));
    settle_all(cluster, 10_000);
    assert.equal(cluster.replicas[primary]!.commit_min, cluster.replicas[backup]!.commit_min);
    lookup_all(cluster, [100n, 101n, 102n, 103n, 104n, 105n]);
});

test('cluster of 3: a backup restarts with a damaged prepare whose redundant header is intact; ' +
    'it is a hole in a provable log, fetched and rewritten, not a reason to stop voting',
async () => {
    const lines: string[] = [];
    const cluster = await Cluster.create({
        seed: 25, replica_count: 3, clients: 1, log: (line) => lines.push(line),
    });
    cluster.register_all();
    load(cluster, 4, 100n);
    settle_all(cluster);
    const primary = cluster.primary();
    const backup = (primary + 1) % 3;
    const head = cluster.replicas[backup]!.op;
    await cluster.crash(backup);
    // A prepare below the head rots; its redundant header still names it.
    const op = head - 2;
    cluster.storages[backup]!.flip_bit(Zone.wal_prepares,
        (op % cluster.config.slot_count) * cluster.config.message_size_max + 300);
    await cluster.restart(backup);
    const restarted = cluster.replicas[backup]!;
    assert.notEqual(restarted.status, Status.recovering_head, cluster.describe());
    assert.equal(restarted.journal.slot_faulty(op % cluster.config.slot_count), true);
    load(cluster, 2, 300n);
    settle_all(cluster, 10_000);
    assert.equal(restarted.journal.slot_faulty(op % cluster.config.slot_count), false,
        lines.join('\n'));
    assert(restarted.stats_cluster.holes_rewritten >= 1, cluster.describe());
    assert.equal(restarted.commit_min, cluster.replicas[primary]!.commit_min);
});

test('cluster of 3: a new primary whose WAL copy of an uncommitted op reads back damaged ' +
    'fetches it from a backup, rewrites it and commits it, keeping its log', async () => {
    const lines: string[] = [];
    const cluster = await Cluster.create({
        seed: 26, replica_count: 3, clients: 1, log: (line) => lines.push(line),
    });
    cluster.register_all();
    load(cluster, 2, 100n);
    settle_all(cluster);
    const primary = cluster.primary();
    const next = (primary + 1) % 3;
    // Both backups prepare the next op, but no acknowledgement reaches the primary: it stays
    // uncommitted, in both backups' logs.
    cluster.network.filter = (_from, to, command) => to === primary &&
        command === Command.prepare_ok;
    const client = cluster.clients[0]!;
    const op = cluster.replicas[primary]!.op + 1;
    const oks = cluster.replicas.map((replica) => replica.stats_cluster.prepare_oks_sent);
    client.submit(create_accounts, multi_batch_body([accounts_body(500n, 2)], 128));
    // Durable on both backups: each acknowledged it.
    cluster.run_until(() => cluster.replicas.every((replica, index) => index === primary ||
        (replica.op === op && replica.stats_cluster.prepare_oks_sent > oks[index]!)), 1000);
    await cluster.crash(primary);
    // The next primary's copy rots on disk and is gone from memory (a cache miss).
    const slot = op % cluster.config.slot_count;
    cluster.storages[next]!.flip_bit(Zone.wal_prepares,
        slot * cluster.config.message_size_max + 300);
    const replica_next = cluster.replicas[next]!;
    (replica_next as unknown as { cache_release(op: number): void }).cache_release(op);
    const exchanges = client.exchanges.length;
    cluster.network.filter = null;
    cluster.run_until(() => client.exchanges.length === exchanges + 1, 30_000);
    assert.equal(cluster.primary(), next, cluster.describe());
    assert(lines.some((line) => line.includes(`replica ${next}: op ${op} unreadable in our WAL ` +
        'while refilling the pipeline: fetching it from a backup')), lines.join('\n'));
    assert.equal(replica_next.stats_cluster.ops_nacked, 0);
    assert(replica_next.stats_cluster.holes_rewritten >= 1, cluster.describe());
    assert.equal(replica_next.journal.slot_faulty(slot), false);
    assert(replica_next.commit_min >= op, cluster.describe());
    await cluster.restart(primary);
    settle_all(cluster, 10_000);
    lookup_all(cluster, [100n, 101n, 102n, 103n, 500n, 501n]);
});

test('cluster of 3: a backup whose data file was lost is rebuilt as `recover` does; it follows ' +
    'the view, repairs its log, and votes only from the recorded view + 2', async () => {
    const lines: string[] = [];
    const cluster = await Cluster.create({
        seed: 41, replica_count: 3, clients: 1, log: (line) => lines.push(line),
    });
    cluster.register_all();
    load(cluster, 3, 100n);
    const primary = cluster.primary();
    const lost = (primary + 1) % 3;
    const other = (primary + 2) % 3;
    await cluster.crash(lost);
    // The recovery's requests: once a pipeline's worth commits without the lost replica, every
    // op it may have acknowledged is committed (internals.md §8.3).
    const client = cluster.clients[0]!;
    const before = client.exchanges.length;
    for (let request = 0; request < 8; request++) {
        client.submit(lookup_accounts, multi_batch_body([ids_body(100n)], 16));
    }
    cluster.run_until(() => client.exchanges.length === before + 8, 40_000);
    const view = client.view;
    await cluster.reformat(lost, view);
    await cluster.restart(lost);
    const recovered = cluster.replicas[lost]!;
    assert.equal(recovered.status, Status.recovering_head);
    assert.equal(recovered.view, view);
    assert(lines.some((line) => line.includes(`replica ${lost}: rebuilt by recover`)));
    settle_all(cluster, 20_000);
    const commit = cluster.replicas[primary]!.commit_min;
    assert.equal(recovered.commit_min, commit, cluster.describe());
    assert.equal(recovered.view, view);
    // The primary dies: the view change needs the recovered replica's vote, which it gives
    // only for view + 2 and later, so the cluster passes view + 1 by.
    await cluster.crash(primary);
    load(cluster, 1, 700n, 80_000);
    settle_all(cluster, 20_000);
    assert(recovered.view >= view + 2, cluster.describe());
    assert.equal(cluster.replicas[other]!.view, recovered.view);
    assert.equal(recovered.commit_min, cluster.replicas[other]!.commit_min);
    lookup_all(cluster, [100n, 101n, 102n, 103n, 104n, 105n, 700n, 701n]);
});

/**
 * State sync (docs/vsr.md §16): a backup is down while the others commit past two checkpoints
 * and wrap their WAL, so the op it needs next is in no peer's WAL any more. Restarted, it adopts
 * the primary's checkpoint (durable in its superblock first), stops, and restarted again it
 * restores that checkpoint with every block fetched from its peers, repairs the WAL above it and
 * rejoins. With `crash_mid_sync`, it also crashes during that restore and resumes the sync.
 */
async function state_sync_case(seed: number, crash_mid_sync: boolean): Promise<void> {
    const lines: string[] = [];
    const cluster = await Cluster.create({
        seed, replica_count: 3, clients: 2, config: { ...config_sim, slot_count: 32 },
        log: (line) => lines.push(line),
    });
    cluster.register_all();
    load(cluster, 4, 100n);
    settle_all(cluster);
    const primary = cluster.primary();
    const backup = (primary + 1) % 3;
    const stopped_at = cluster.replicas[backup]!.commit_min;
    await cluster.crash(backup);
    // 2 clients x 40 requests: 80 ops, five checkpoints of 16 ops and two and a half WALs.
    load(cluster, 40, 10_000n);
    const slot_count = cluster.config.slot_count;
    assert(cluster.replicas[primary]!.commit_min > stopped_at + 2 * slot_count);
    await cluster.restart(backup);
    cluster.run_until(() => cluster.replicas[backup]!.sync_restart_wanted, 2000);
    const target = new VsrState();
    cluster.replicas[backup]!.superblock.vsr_state_read(target);
    assert(target.checkpoint_op > stopped_at + slot_count, `target ${target.checkpoint_op}`);
    assert.equal(target.commit_max, target.checkpoint_op, 'commit_max no higher than the target');
    assert.equal(target.sync_op_max, target.checkpoint_op);
    assert.equal(cluster.replicas[backup]!.stats_cluster.syncs, 1);
    await cluster.crash(backup);
    await cluster.restart(backup, false);
    if (crash_mid_sync) {
        cluster.run_until(() => (cluster.replicas[backup]!.grid_repair?.blocks_repaired ?? 0) >= 1,
            2000);
        assert.equal(cluster.replicas[backup]!.status, Status.restoring);
        await cluster.crash(backup);
        await cluster.restart(backup, false);
    }
    settle_all(cluster, 10_000);
    const synced = cluster.replicas[backup]!;
    assert.equal(synced.status, Status.normal, cluster.describe());
    assert(synced.grid_repair!.blocks_repaired > 0);
    for (const replica of cluster.replicas) assert.equal(replica.commit_min, synced.commit_min);
    assert.equal(cluster.ledgers[backup]!.checksum_state(),
        cluster.ledgers[primary]!.checksum_state());
    const state = new VsrState();
    synced.superblock.vsr_state_read(state);
    assert(state.checkpoint_op >= target.checkpoint_op, cluster.describe());
    cluster.check_commits();
    assert(lines.some((line) => line.includes(`replica ${backup}: state sync: op `)));
    // It serves: the others stop in turn, and each time the synced replica and the survivor
    // form a view and answer every acknowledged account.
    const leaders: number[] = [];
    for (const other of [primary, (backup + 2) % 3]) {
        await cluster.crash(other);
        cluster.run_until(() => cluster.primary() !== -1, 20_000);
        leaders.push(cluster.primary());
        load(cluster, 1, 50_000n + BigInt(other) * 100n);
        lookup_all(cluster, [100n, 101n, 10_000n, 10_001n, 11_078n, 11_079n]);
        await cluster.restart(other);
        settle_all(cluster, 10_000);
    }
    assert(leaders.includes(backup), `leaders ${leaders.join(', ')}: the synced one never led`);
}

test('cluster of 3: a backup left beyond the cluster\'s WAL state-syncs to the primary\'s ' +
    'checkpoint, fetching its blocks from peers, then rejoins and serves', async () => {
    await state_sync_case(31, false);
});

test('cluster of 3: a backup that crashes during its state sync resumes it from its superblock ' +
    'and finishes', async () => {
    await state_sync_case(32, true);
});

test('commit validation: the checkpoint root address a state sync reads is a safe integer',
    () => {
    const validator = new HeaderValidator(cluster_sim);
    for (const [root, reason] of [[0n, Reason.ok], [37n, Reason.ok],
        [2n ** 53n, Reason.op_beyond_max]] as const) {
        const bytes = new Uint8Array(header_size);
        const header = header_init(new HeaderView(), bytes, 0, Command.commit, header_size,
            release_server);
        header.copy16_from(frame.cluster, cluster_bytes(cluster_sim), 0);
        header.set_u64(offsets.commit.checkpoint_op, 16);
        header.set_u64(offsets.commit.commit, 20);
        header.set_u64(offsets.commit.timestamp_monotonic, 1);
        header.set_limb(offsets.commit.checkpoint_root_address, 0, Number(root & 0xffff_ffffn));
        header.set_limb(offsets.commit.checkpoint_root_address, 1, Number(root >> 32n));
        seal_empty_body(header);
        assert.equal(validator.message(bytes, 0, bytes.length), reason);
    }
});
