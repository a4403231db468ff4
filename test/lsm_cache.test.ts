// The LSM layer's parts: the block cache's geometry and CLOCK eviction, the table layout's sizes,
// and the tree over the replica's Storage (the fault-injecting simulator's grid zone, with
// latency, u128 keys and 128-byte values) against the reference model.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Arena } from '../lib/io/arena';
import { Prng } from '../lib/prng';
import { BlockCache, cache_ways } from '../lib/lsm/block_cache';
import { StorageBlockDevice } from '../lib/lsm/block_device';
import { TableLayout } from '../lib/lsm/table_format';
import { Tree, tree_buffer_count } from '../lib/lsm/tree';
import { SimulatorStorage } from '../lib/storage/simulator_storage';
import { config_test, ZoneLayout } from '../lib/storage/zones';
import { cluster, Model, put, remove } from './lsm_harness';
import { key_from_bigint, key_to_bigint } from '../lib/lsm/key';

test('block cache: sized from bytes in whole power-of-two sets, never more', () => {
    assert.equal(BlockCache.slot_count_for(64 * 1024, 1024), 64);
    // 100 blocks make 6 sets of 16; rounded down to 4 sets (a power of two).
    assert.equal(BlockCache.slot_count_for(100 * 1024, 1024), 64);
    assert.equal(BlockCache.slot_count_for(1024 * 1024 * 1024, 64 * 1024), 16384);
    assert.throws(() => BlockCache.slot_count_for(15 * 1024, 1024), /at least one set/);
});

test('block cache: CLOCK evicts unused blocks first; reads in flight are never evicted', () => {
    const block = 512;
    const memory = new Uint8Array(cache_ways * block);
    const cache = new BlockCache(memory, 0, cache_ways, block);
    // One set: every address maps to it. Fill it, use address 1 often, then insert more.
    for (let address = 1; address <= cache_ways; address++) {
        const slot = cache.reserve(address);
        assert(slot >= 0);
        cache.fill_complete(slot);
    }
    assert.equal(cache.ready_count(), cache_ways);
    for (let use = 0; use < 3; use++) assert(cache.lookup(1) >= 0);
    for (let address = 100; address < 100 + cache_ways - 1; address++) {
        const slot = cache.reserve(address);
        assert(slot >= 0, 'a victim exists');
        cache.fill_complete(slot);
        assert(cache.ready_count() <= cache_ways);
    }
    assert(cache.lookup(1) >= 0, 'the hot block survived');
    assert.equal(cache.lookup(2), -1, 'a cold block was evicted');
    assert.equal(cache.evictions, cache_ways - 1);
    // Every way reading: nothing can be reserved until a read completes.
    const reading: number[] = [];
    for (let address = 1000; address < 1000 + cache_ways; address++) {
        reading.push(cache.reserve(address));
    }
    assert(reading.every((slot) => slot >= 0));
    assert.equal(cache.reserve(5000), -1);
    assert.equal(cache.lookup(1000), -1, 'a block being read is not returned');
    assert(cache.reading(1000));
    cache.fill_complete(reading[0]!);
    assert(cache.lookup(1000) >= 0);
    cache.remove(1000);
    assert.equal(cache.lookup(1000), -1);
    assert.equal(cache.slot_count, cache_ways);
});

test('table layout: entries per block and blocks per table follow from the sizes', () => {
    // u64 keys and values in 1 KiB blocks: 768 body bytes; 16 bytes and a bit per entry.
    const small = new TableLayout(2, 2, 1024, 200);
    assert.equal(small.data_entry_count_max, 47);
    assert.equal(small.data_block_count_max, 5);
    assert.equal(small.table_entry_count_max, 235);
    // u128 ids and 128-byte records in 64 KiB blocks (the grid's block size).
    const records = new TableLayout(4, 32, 64 * 1024, 8189 * 32);
    assert.equal(records.data_entry_count_max, 452);
    assert.equal(records.data_block_count_max, Math.ceil(8189 * 32 / 452));
    assert(records.index_references_offset + records.data_block_count_max * 32 <= 64 * 1024);
    assert.throws(() => new TableLayout(4, 32, 4096, 8189 * 32), /cannot name every data block/);
});

function storage_tree(seed: number): { tree: Tree; storage: SimulatorStorage } {
    const block = 4096;
    const options = {
        tree_id: 3, key_words: 4, value_words: 32, bar_entry_count_max: 96, bar_beat_count: 4,
        level_count: 3, growth_factor: 2, cache_size_bytes: 16 * block, lookup_count_max: 16,
        scan_count_max: 64, cluster,
    };
    const layout = new ZoneLayout({ ...config_test, block_size: block, grid_block_count: 4096 });
    const size = tree_buffer_count(options, block) * block;
    const arena = new Arena(size + block);
    const offset = arena.allocate(size, block);
    const storage = new SimulatorStorage(arena, layout, {
        seed, latency_ticks_min: 0, latency_ticks_max: 4, operations_max: 64, dsync: true,
    });
    return { tree: new Tree(options, new StorageBlockDevice(storage, 64), offset), storage };
}

function storage_run(tree: Tree, storage: SimulatorStorage): void {
    for (let tick = 0; tick < 100_000 && !tree.idle; tick++) storage.tick();
    assert(tree.idle && storage.in_flight === 0);
}

test('lsm tree over Storage: u128 keys, 128-byte values, reads with latency', () => {
    const { tree, storage } = storage_tree(3);
    const model = new Model();
    const prng = new Prng(3);
    const keys = new Uint32Array(16 * 4);
    for (let op = 0; op < 120; op++) {
        for (let index = 0; index < 20; index++) {
            const key = BigInt(prng.int(600)) << 64n;
            if (prng.chance(1, 6)) remove(tree, model, key);
            else put(tree, model, key, (BigInt(prng.u32()) << 900n) | BigInt(op));
        }
        const asked: bigint[] = [];
        for (let index = 0; index < 16; index++) {
            asked.push(BigInt(prng.int(620)) << 64n);
            key_from_bigint(keys, index * 4, asked[index]!, 4);
        }
        tree.lookups_start(keys, 0, 16);
        storage_run(tree, storage);
        asked.forEach((key, index) => {
            const expected = model.values.get(key) ?? null;
            const found = tree.lookup_status[index] === 1 ?
                key_to_bigint(tree.lookup_values, index * 32, 32) : null;
            assert.equal(found, expected, `op ${op}: lookup of ${key >> 64n}`);
        });
        tree.compact_beat();
        storage_run(tree, storage);
    }
    assert(tree.manifest.table_count_total() >= 2 && tree.statistics.blocks_read > 0);
});
