// Cluster time across replicas (lib/vsr/clock.ts, docs/vsr.md §10), case by case: a primary
// whose clock runs an hour ahead is outvoted, so its prepares carry the others' time; a primary
// that hears no pongs has no cluster time, prepares nothing, says so once, and serves once pongs
// come back; prepare timestamps strictly increase along the log throughout.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Prng } from '../lib/prng';
import { Operation } from '../lib/vsr/constants';
import { HeaderView } from '../lib/vsr/header';
import { Command, offsets } from '../lib/vsr/header_layout';
import type { Replica } from '../lib/vsr/replica';
import { MachineClock, clock_faults_none } from '../lib/testing/machine_clock';
import { account_event, multi_batch_body } from './replica_harness';
import type { SimTime } from './replica_harness';
import { Cluster } from './cluster_harness';

const hour_us = 3600 * 1_000_000;

/** The committed prepares' timestamps, op 1 up (the journal still holds them all here). */
function timestamps(replica: Replica): bigint[] {
    const view = new HeaderView();
    const result: bigint[] = [];
    const slots = replica.journal.slot_count;
    assert(replica.commit_min < slots, 'the journal holds every committed op');
    for (let op = 1; op <= replica.commit_min; op++) {
        view.attach(replica.journal.headers, (op % slots) * 256);
        assert.equal(view.u64(offsets.prepare.op), op);
        result.push(view.u64_bigint(offsets.prepare.timestamp));
    }
    return result;
}

function load(cluster: Cluster, count: number): void {
    const target = cluster.clients.map((client) => client.exchanges.length + count);
    cluster.clients.forEach((client, index) => {
        for (let request = 0; request < count; request++) {
            const id = BigInt(5000 + index * 1000 + request);
            client.submit(Operation.create_accounts, multi_batch_body([account_event(id)], 128));
        }
    });
    cluster.run_until(() => cluster.clients.every((client, index) =>
        client.exchanges.length >= target[index]!), 40_000);
}

/** Replica `rogue`'s wall clock an hour ahead; the others exact. */
function rogue_time(rogue: number): (replica: number, time: SimTime) => MachineClock {
    return (replica, time) => new MachineClock(time, new Prng(replica), {
        ...clock_faults_none, rogue_replica: rogue, rogue_offset_us: hour_us,
    }, replica);
}

test('cluster of 3: a primary an hour ahead is outvoted: its prepares carry cluster time',
    async () => {
        // Replica 0 starts with a view change: view 1's primary, replica 1, is the rogue.
        const cluster = await Cluster.create({
            seed: 11, replica_count: 3, clients: 2, time_of: rogue_time(1),
        });
        cluster.register_all();
        load(cluster, 4);
        const primary = cluster.replicas[1]!;
        assert.equal(cluster.primary(), 1);
        assert(primary.clock.synchronized);
        assert(primary.clock.stats.synchronizations >= 1);
        const stamps = timestamps(primary);
        assert(stamps.length >= 10, `${stamps.length} ops`);
        const true_ns = BigInt(cluster.time.realtime_us()) * 1000n;
        for (let index = 0; index < stamps.length; index++) {
            if (index > 0) assert(stamps[index]! > stamps[index - 1]!, 'strictly increasing');
            // The two honest clocks agree on the true time: within a one-way delay and the
            // tolerance halving, nowhere near the rogue's hour.
            assert(stamps[index]! <= true_ns, `op ${index + 1} stamped in the future`);
            assert(true_ns - stamps[index]! < 60_000_000_000n, `op ${index + 1} too early`);
        }
    });

test('cluster of 3: a primary without pongs does not prepare, says so once, then resumes',
    async () => {
        const lines: string[] = [];
        const cluster = await Cluster.create({
            seed: 12, replica_count: 3, clients: 1, log: (line) => lines.push(line),
        });
        // No pong reaches replica 1 (view 1's primary): it cannot sample any clock.
        cluster.network.filter = (_from, to, command) => to === 1 && command === Command.pong;
        cluster.clients[0]!.register();
        for (let tick = 0; tick < 3000; tick++) cluster.tick();
        const primary = cluster.replicas[1]!;
        assert.equal(cluster.primary(), 1);
        assert.equal(primary.clock.synchronized, false);
        assert.equal(primary.op, 0, 'nothing prepared without cluster time');
        assert(primary.stats_cluster.clock_waits > 0);
        assert.equal(cluster.clients[0]!.session, 0n);
        const waiting = lines.filter((line) => /replica 1: no cluster time/.test(line));
        assert.equal(waiting.length, 1, 'told once');
        // The backups have cluster time (their pongs arrive): only the primary waits.
        assert(cluster.replicas[0]!.clock.synchronized && cluster.replicas[2]!.clock.synchronized);
        cluster.network.filter = null;
        cluster.run_until(() => cluster.clients[0]!.session !== 0n, 3000);
        assert.notEqual(cluster.clients[0]!.session, 0n);
        assert(primary.clock.synchronized);
        assert.equal(lines.filter((line) => /replica 1: cluster time agreed again/.test(line))
            .length, 1);
        load(cluster, 3);
        const stamps = timestamps(primary);
        for (let index = 1; index < stamps.length; index++) {
            assert(stamps[index]! > stamps[index - 1]!);
        }
    });
