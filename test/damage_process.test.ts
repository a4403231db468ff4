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
import {
    ClusterProcesses, load_summary, replica_count, serve_and_lead, sleep,
} from './cluster_processes';
import { load_start } from './server_process';

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
        const summary = await load_summary(cluster, load.done);
        // It found the damage at startup (WAL slots, session replies) rather than serving it.
        assert.match(cluster.servers[damaged]!.stdout + cluster.servers[damaged]!.stderr,
            /faulty|damaged|corrupt|unreadable/, cluster.log());
        await serve_and_lead(cluster, damaged, summary);
    } finally {
        load.child.kill('SIGKILL');
        await cluster.close();
    }
});
