// A replica's data file with random 4 KiB blocks overwritten past the superblock (issue #13's
// real-process check): with real processes through the official client, the stopped replica's
// file is damaged in its WAL headers, WAL prepares, client replies and anywhere after the
// superblock; it restarts while the load goes on, repairs itself from its peers, and must then
// serve with each peer stopped in turn and lead the cluster, with every acknowledged transfer's
// balances exact.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';

import { Prng } from '../lib/prng';
import {
    accounts_max_default, clients_max_default, data_file_config, transfers_max_default,
} from '../lib/server/config';
import { Zone, ZoneLayout } from '../lib/storage/zones';
import { ClusterProcesses, deadline, replica_count, sleep } from './cluster_processes';
import { load_start } from './server_process';

interface Balances { debits_posted: string; credits_posted: string }

const block_size = 4096;

/** Offsets of `count` random 4 KiB blocks of [start, end), block-aligned. */
function blocks_in(prng: Prng, start: number, end: number, count: number): number[] {
    const first = Math.ceil(start / block_size);
    const last = Math.floor(end / block_size);
    assert(last > first);
    const offsets: number[] = [];
    for (let index = 0; index < count; index++) {
        offsets.push((first + prng.int(last - first)) * block_size);
    }
    return offsets;
}

/**
 * Overwrites random blocks with random bytes: in the WAL headers, the first 256 prepare slots,
 * the client replies, and anywhere from the end of the superblock. Returns how many.
 */
function damage(file: string, seed: number): number {
    const layout = new ZoneLayout(data_file_config({ clients_max: clients_max_default,
        accounts_max: accounts_max_default, transfers_max: transfers_max_default }));
    const prng = new Prng(seed);
    const zone_end = (zone: Zone): number => layout.starts[zone]! + layout.sizes[zone]!;
    const size_bytes = fs.statSync(file).size;
    assert.equal(size_bytes, layout.total_size_bytes, 'the layout is the formatted one');
    const prepares = layout.starts[Zone.wal_prepares]!;
    const offsets = [
        ...blocks_in(prng, layout.starts[Zone.wal_headers]!, zone_end(Zone.wal_headers), 8),
        ...blocks_in(prng, prepares, prepares + 256 * layout.config.message_size_max, 24),
        ...blocks_in(prng, layout.starts[Zone.client_replies]!, zone_end(Zone.client_replies), 8),
        ...blocks_in(prng, layout.starts[Zone.wal_headers]!, size_bytes, 24),
    ];
    const fd = fs.openSync(file, 'r+');
    try {
        const bytes = Buffer.alloc(block_size);
        for (const offset of offsets) {
            for (let index = 0; index < block_size; index += 4) {
                bytes.writeUInt32LE(prng.u32(), index);
            }
            fs.writeSync(fd, bytes, 0, block_size, offset);
        }
        fs.fsyncSync(fd);
    } finally {
        fs.closeSync(fd);
    }
    return offsets.length;
}

async function balances_read(cluster: ClusterProcesses, what: string): Promise<Balances> {
    const read = await deadline(load_start(0, 0, 1, 0, cluster.addresses).done, 60_000, what,
        cluster);
    assert.equal(read.code, 0, read.output + cluster.log());
    return JSON.parse(read.output.trim()) as Balances;
}

test('damage: random 4 KiB blocks overwritten past the superblock of a stopped replica; it ' +
    'restarts under load, repairs, serves with each peer stopped and leads, balances exact',
{ timeout: 300_000 }, async () => {
    const cluster = await ClusterProcesses.create('damage');
    // Bounded by a count and paced, so that the peers' WALs still hold what it missed.
    const load = load_start(0, 6_000, 1, 100_000, cluster.addresses, 60);
    try {
        await sleep(2_000);
        const damaged = (await cluster.primary() + 1) % replica_count;
        await cluster.kill(damaged);
        assert.equal(damage(cluster.files[damaged]!, 1207), 64);
        await cluster.start(damaged);
        const result = await deadline(load.done, 60_000, 'the load', cluster);
        assert.equal(result.code, 0, result.output + cluster.log());
        const summary = JSON.parse(result.output.trim().split('\n').pop()!) as
            Balances & Record<string, unknown>;
        assert.equal(summary.missing, 0);
        assert.equal(summary.balanced, true);
        assert((summary.acknowledged as number) > 0);
        // It found the damage at startup (WAL slots, session replies) rather than serving it.
        assert.match(cluster.servers[damaged]!.stdout + cluster.servers[damaged]!.stderr,
            /faulty|damaged|corrupt|unreadable/, cluster.log());
        for (let step = 1; step < replica_count; step++) {
            const down = (damaged + step) % replica_count;
            await sleep(3_000);
            await cluster.stop(down);
            const balances = await balances_read(cluster, `the balances without replica ${down}`);
            assert.equal(balances.debits_posted, summary.debits_posted, cluster.log());
            assert.equal(balances.credits_posted, summary.credits_posted);
            await cluster.start(down);
        }
        for (let round = 0; round < replica_count && await cluster.primary() !== damaged;
            round++) {
            await sleep(2_000);
            const primary = await cluster.primary();
            await cluster.kill(primary);
            await balances_read(cluster, `a read after killing primary ${primary}`);
            await cluster.start(primary);
        }
        assert.equal(await cluster.primary(), damaged, cluster.log());
        const balances = await balances_read(cluster, 'the balances with the damaged primary');
        assert.equal(balances.debits_posted, summary.debits_posted, cluster.log());
        assert.equal(balances.credits_posted, summary.credits_posted);
    } finally {
        load.child.kill('SIGKILL');
        await cluster.close();
    }
});
