// The LSM forest: several trees over one device, cache and free set, on one compaction schedule.
// Goal: each tree answers exactly what its model answers while the trees share everything, and
// the schedule is shared and paced (every tree's beat runs in every forest beat, bounded).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
    checkpoint_instant, forest_make, forest_options_small, groove_run, GrooveWorkload,
} from './lsm_harness';

test('lsm forest: three trees over one device, cache and free set match their models', () => {
    const { forest, device } = forest_make(forest_options_small(), 8192, 3);
    const workload = new GrooveWorkload(3);
    groove_run(forest, workload, 300, () => checkpoint_instant(device));
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
