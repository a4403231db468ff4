// The LSM forest: several trees over one device, cache and free set, on one compaction schedule.
// Goal: each tree answers exactly what its model answers while the trees share everything, and
// the schedule is shared and paced (every tree's beat runs in every forest beat, bounded).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Forest } from '../lib/lsm/forest';
import type { MemoryBlockDevice } from '../lib/lsm/block_device';
import {
    block_size_small, forest_make, forest_options_small, forest_run_until_idle, groove_run,
    GrooveWorkload,
} from './lsm_harness';

test('lsm forest: three trees over one device, cache and free set match their models', () => {
    const { forest, device } = forest_make(forest_options_small(), 8192, 3);
    const workload = new GrooveWorkload(3);
    groove_run([forest], workload, 300);
    workload.verify(forest);
    assert.equal(forest.beat, 300);
    for (const tree of forest.trees) {
        // Every tree compacted through its levels, on the forest's beat, through one cache.
        assert.equal(tree.beat, 300);
        assert(tree.level_table_counts().filter((count) => count > 0).length >= 2,
            `tree ${tree.options.tree_id}: levels ${tree.level_table_counts()}`);
        assert(tree.cache === forest.cache);
        // Paced: no beat merged more than an even share of the largest job's input, twice over.
        const entries_max = tree.layout.table_entry_count_max;
        assert(tree.statistics.beat_entries_max <= 2 * entries_max * tree.options.level_count);
    }
    assert(forest.cache.hits > 0 && forest.cache.evictions > 0);
    assert(forest.cache.ready_count() <= forest.cache.slot_count);
    // One free set: the blocks every tree's manifest names are acquired, each by one tree.
    const owners = new Map<number, number>();
    for (const tree of forest.trees) {
        for (let level = 0; level < tree.manifest.level_count; level++) {
            for (let position = 0; position < tree.manifest.counts[level]!; position++) {
                const address = tree.manifest.index_address(level, position);
                assert(device.free_set.is_acquired(address));
                assert(!owners.has(address), `block ${address} named twice`);
                owners.set(address, tree.options.tree_id);
            }
        }
    }
    assert.equal(new Set(owners.values()).size, 3);
});

function acquired(device: MemoryBlockDevice): number[] {
    const addresses: number[] = [];
    for (let address = 1; address <= device.free_set.block_count; address++) {
        if (device.free_set.is_acquired(address)) addresses.push(address);
    }
    return addresses;
}

/** A fresh forest of the same options over a copy of `disk` (what a restart finds). */
function forest_reopen(disk: Uint8Array, root: Uint8Array, seed: number,
    options = forest_options_small()): { forest: Forest; device: MemoryBlockDevice } {
    const made = forest_make(options, disk.length / block_size_small, seed);
    made.device.disk.set(disk);
    made.forest.open(root, 0);
    forest_run_until_idle(made.forest);
    return made;
}

test('lsm forest: a restart from the last durable checkpoint reads every key back', () => {
    const { forest, device } = forest_make(forest_options_small(), 8192, 5);
    const workload = new GrooveWorkload(5);
    groove_run([forest], workload, 200);
    assert.equal(forest.beat % forest.bar_beat_count, 0);
    const root = forest.root_reference.slice();
    const models = workload.models_copy();
    const disk_at_checkpoint = device.disk.slice();
    const acquired_at_checkpoint = acquired(device);
    // The blocks of the mutable tables (an index block and the data blocks of each).
    let memory_blocks = 0;
    for (const tree of forest.trees) {
        const entries = tree.mutable_table.count;
        if (entries > 0) memory_blocks += 1 + Math.ceil(entries / tree.layout.data_entry_count_max);
    }
    assert(memory_blocks >= 3);
    // The log was compacted along the way, and stays within twice what its tables need.
    const checkpoint = forest.checkpoint;
    assert(checkpoint.log_blocks_compacted > 0);
    let tables = 0;
    for (const tree of forest.trees) tables += tree.manifest.table_count_total();
    assert(checkpoint.log_block_count <= 2 * Math.ceil(tables /
        checkpoint.geometry.events_per_block) + 1 + checkpoint.geometry.log_blocks_new_max);
    // Compactions after the checkpoint release (and write over nothing) what it names; the
    // mutable tables hold puts that no checkpoint has.
    groove_run([forest], workload, 6 * forest.bar_beat_count + 3, false);
    assert(device.releasing_count > 20, `released ${device.releasing_count}`);
    // A crash that lost every write since the checkpoint, and one that lost none of them.
    for (const disk of [disk_at_checkpoint, device.disk]) {
        const reopened = forest_reopen(disk, root, 7);
        workload.verify(reopened.forest, models);
        assert.equal(reopened.forest.beat, 200);
        // The free set is the checkpoint's: what it names is acquired, nothing more.
        assert.deepEqual(acquired(reopened.device), acquired_at_checkpoint);
        assert.equal(reopened.forest.checkpoint.blocks_read,
            1 + checkpoint.geometry.free_set_block_count +
            2 * reopened.forest.checkpoint.log_block_count + memory_blocks);
    }
    // The forest that did not crash still answers its own, newer state.
    workload.verify(forest);
});

test('lsm forest: a restarted forest continues exactly like one that ran on', () => {
    const { forest, device } = forest_make(forest_options_small(), 8192, 9);
    const workload = new GrooveWorkload(9);
    groove_run([forest], workload, 96);
    const reopened = forest_reopen(device.disk, forest.root_reference, 10);
    assert.deepEqual(reopened.forest.root_reference, forest.root_reference);
    // Both take the same ops from here (and checkpoint at the same beats).
    groove_run([forest, reopened.forest], workload, 160);
    workload.verify(forest);
    workload.verify(reopened.forest);
    assert.deepEqual(reopened.forest.root_reference, forest.root_reference);
    assert(Buffer.from(device.disk).equals(Buffer.from(reopened.device.disk)),
        'lsm: the grids differ');
    for (let address = 1; address <= device.free_set.block_count; address++) {
        assert.equal(reopened.device.free_set.is_acquired(address),
            device.free_set.is_acquired(address), `block ${address}`);
    }
});
