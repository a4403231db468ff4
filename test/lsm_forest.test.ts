// The LSM forest: several trees over one device, cache and free set, on one compaction schedule.
// Goal: each tree answers exactly what its model answers while the trees share everything, and
// the schedule is shared and paced (every tree's beat runs in every forest beat, bounded).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { block_seal, BlockType, reference_address, reference_write } from '../lib/vsr/grid';
import { offsets } from '../lib/vsr/header_layout';
import { u32_read, u64_read } from '../lib/vsr/prepare_header';
import { Arena } from '../lib/io/arena';
import { CrashMode, SimulatorStorage } from '../lib/storage/simulator_storage';
import { config_test, header_size, ZoneLayout } from '../lib/storage/zones';
import { StorageBlockDevice } from '../lib/lsm/block_device';
import { Forest, forest_buffer_count } from '../lib/lsm/forest';
import type { ForestOptions } from '../lib/lsm/forest';
import { BlockRefusal, lookup_pending } from '../lib/lsm/tree';
import type { MemoryBlockDevice } from '../lib/lsm/block_device';
import {
    block_size_small, cluster, forest_checkpoint, forest_make, forest_options_small,
    forest_run_until_idle, groove_run, GrooveWorkload, lookups,
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
    // A crash that lost every write since the checkpoint, one that lost none of them, and one
    // after the next checkpoint was written but before the superblock named it.
    const disk_after_compactions = device.disk.slice();
    groove_run([forest], workload, forest.bar_beat_count - 3, false);
    forest.checkpoint_start();
    forest_run_until_idle(forest);
    assert(!Buffer.from(forest.root_reference).equals(Buffer.from(root)));
    for (const disk of [disk_at_checkpoint, disk_after_compactions, device.disk]) {
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
    forest.checkpoint_durable();
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

/** One tree of u64 keys and values in 16 KiB blocks: the shape of a large state, quickly. */
function large_options(): ForestOptions {
    return {
        trees: [{ tree_id: 1, key_words: 2, value_words: 2, bar_entry_count_max: 4096,
            bar_beat_count: 8, level_count: 4, growth_factor: 4, cache_size_bytes: 0,
            lookup_count_max: 64, scan_count_max: 4096, cluster }],
        cache_size_bytes: 16 * 16 * 1024,
        checkpoint: { manifest_events_max: 512, manifest_log_blocks_max: 256 },
    };
}

interface OpenCost {
    blocks_read: number;
    log_blocks: number;
    table_blocks: number;
}

/**
 * Puts `count` distinct keys (a permutation of 0..count-1 scattered over u32), a checkpoint at
 * every bar's end; reopens from the last one and scans every key back.
 */
function open_cost(count: number): OpenCost {
    const block_size = 16 * 1024;
    const grid_blocks = Math.ceil(count * 16 * 4 / block_size) + 512;
    const options = large_options();
    const made = forest_make(options, grid_blocks, 1, block_size);
    const tree = made.forest.trees[0]!;
    const key = new Uint32Array(2);
    const per_beat = 4096 / 8;
    for (let put = 0; put < count || made.forest.beat % 8 !== 0;) {
        for (let index = 0; index < per_beat && put < count; index++, put++) {
            key[0] = Math.imul(put, 0x9e3779b1) >>> 0;
            key[1] = 0;
            tree.put(key, 0, key, 0);
        }
        made.forest.compact_beat();
        forest_run_until_idle(made.forest);
        if (made.forest.beat % 8 === 0) forest_checkpoint(made.forest);
    }
    let table_blocks = 0;
    const manifest = tree.manifest;
    for (let level = 0; level < manifest.level_count; level++) {
        for (let table = 0; table < manifest.counts[level]!; table++) {
            table_blocks += manifest.data_block_count[level]![table]! + 1;
        }
    }
    const again = forest_make(options, grid_blocks, 2, block_size);
    again.device.disk.set(made.device.disk);
    again.forest.open(made.forest.root_reference, 0);
    forest_run_until_idle(again.forest);
    const blocks_read = again.device.reads;
    const checkpoint = again.forest.checkpoint;
    assert.equal(checkpoint.blocks_read, blocks_read);
    // Exactly: the root, the free set, the log twice (walk, replay), the mutable table.
    const entries = tree.mutable_table.count;
    assert.equal(blocks_read, 1 + checkpoint.geometry.free_set_block_count +
        2 * checkpoint.log_block_count + (entries === 0 ? 0 :
        1 + Math.ceil(entries / tree.layout.data_entry_count_max)));
    scan_every_key(again.forest, count);
    return { blocks_read, log_blocks: checkpoint.log_block_count, table_blocks };
}

/** A scan of the whole key space returns exactly the keys put, in order, with their values. */
function scan_every_key(forest: Forest, count: number): void {
    const tree = forest.trees[0]!;
    const expected = new Uint32Array(count);
    for (let put = 0; put < count; put++) expected[put] = Math.imul(put, 0x9e3779b1) >>> 0;
    expected.sort();
    const bounds = new Uint32Array([0, 0, 0xffffffff, 0xffffffff]);
    let seen = 0;
    for (let scans = 0; scans <= count / 4096 + 1; scans++) {
        tree.scan_start(bounds, 0, bounds, 2, 4096);
        forest_run_until_idle(forest);
        for (let index = 0; index < tree.scan_count; index++) {
            const found = tree.scan_keys[index * 2]!;
            assert.equal(found, expected[seen], `key ${seen}`);
            assert.equal(tree.scan_values[index * 2], found);
            seen += 1;
        }
        if (tree.scan_count < 4096) break;
        bounds[0] = tree.scan_keys[(tree.scan_count - 1) * 2]! + 1;
    }
    assert.equal(seen, count);
}

test('lsm forest: open reads the manifest log, never the tables: 10k and 1M keys', () => {
    const small = open_cost(10_000);
    const large = open_cost(1_000_000);
    console.log(`open: 10k keys ${JSON.stringify(small)}; 1M keys ${JSON.stringify(large)}`);
    assert(large.table_blocks > 50 * small.table_blocks);
    assert(large.blocks_read < large.table_blocks / 20);
    assert(large.blocks_read <= small.blocks_read + 2 * large.log_blocks);
});

test('lsm forest: the same ops make byte-identical grids, whatever the cache and reads', () => {
    // Different caches (16 and 256 blocks), completion orders, and reads between beats: one
    // forest is looked up and scanned all along, the other never.
    const first = forest_make(forest_options_small(), 8192, 1);
    const second = forest_make(forest_options_small({ cache_size_bytes: 256 * 1024 }), 8192,
        77);
    const workload = new GrooveWorkload(13);
    for (let round = 0; round < 12; round++) {
        groove_run([first.forest, second.forest], workload, 24);
        workload.verify(first.forest);
    }
    assert(first.forest.cache.hits > 0 && second.forest.cache.hits === 0);
    assert.deepEqual(first.forest.root_reference, second.forest.root_reference);
    assert.deepEqual(acquired(first.device), acquired(second.device));
    // Every block, acquired or not (both grids started zeroed).
    const block = block_size_small;
    for (let address = 1; address <= first.device.free_set.block_count; address++) {
        const a = first.device.disk.subarray((address - 1) * block, address * block);
        const b = second.device.disk.subarray((address - 1) * block, address * block);
        assert(Buffer.from(a).equals(Buffer.from(b)), `block ${address} differs`);
    }
    // A different sequence of ops makes a different grid: the comparison is not vacuous.
    const other = forest_make(forest_options_small(), 8192, 1);
    groove_run([other.forest], new GrooveWorkload(14), 12 * 24);
    assert(!Buffer.from(other.device.disk).equals(Buffer.from(first.device.disk)));
});

/** The acquired blocks of one type (read from their headers). */
function blocks_of_type(device: MemoryBlockDevice, type: number): number[] {
    return acquired(device).filter((address) =>
        device.disk[(address - 1) * device.block_size_bytes + offsets.block.block_type] === type);
}

test('lsm forest: a corrupt checkpoint block is refused with its address, never opened', () => {
    const { forest, device } = forest_make(forest_options_small(), 8192, 21);
    groove_run([forest], new GrooveWorkload(21), 120);
    const root = forest.root_reference.slice();
    const root_address = reference_address(root, 0);
    for (const type of [BlockType.lsm_root, BlockType.lsm_free_set, BlockType.lsm_manifest_log,
        BlockType.lsm_data]) {
        // The newest block of the type that the checkpoint names (data: a mutable table's).
        const candidates = blocks_of_type(device, type).filter((address) =>
            type !== BlockType.lsm_root || address === root_address);
        const address = type === BlockType.lsm_data ? mutable_table_block(forest, device) :
            candidates[candidates.length - 1]!;
        const disk = device.disk.slice();
        disk[(address - 1) * block_size_small + 700]! ^= 0x10;
        const made = forest_make(forest_options_small(), 8192, 22);
        made.device.disk.set(disk);
        made.forest.open(root, 0);
        forest_run_until_idle(made.forest);
        const refusal = made.forest.open_refusal;
        assert(refusal instanceof BlockRefusal, `type ${type}`);
        assert.equal(refusal.address, address);
        // A mutable table's block is its tree's (the ids tree); the rest are the forest's.
        const owner = type === BlockType.lsm_data ? 'tree 2' : 'the forest checkpoint';
        assert.equal(refusal.tree_id, type === BlockType.lsm_data ? 2 : 0);
        assert.equal(refusal.message,
            `lsm: block ${address} of ${owner} refused: not the block the checkpoint names`);
        assert.throws(() => made.forest.compact_beat(), /a forest that did not open/);
    }
});

/** A data block of the ids tree's mutable table, as the checkpoint wrote it. */
function mutable_table_block(forest: Forest, device: MemoryBlockDevice): number {
    const tree_id = forest.trees[1]!.options.tree_id;
    const candidates = blocks_of_type(device, BlockType.lsm_data).filter((address) => {
        const offset = (address - 1) * device.block_size_bytes;
        // Written by the last checkpoint (its snapshot is the checkpoint's beat), of tree 2.
        return u32_read(device.disk, offset + offsets.block.metadata) === tree_id &&
            u64_read(device.disk, offset + offsets.block.snapshot) === forest.beat;
    });
    assert(candidates.length >= 1);
    return candidates[0]!;
}

test('lsm forest: a corrupt table block is refused naming its tree; other trees answer', () => {
    const { forest, device } = forest_make(forest_options_small(), 8192, 31);
    const workload = new GrooveWorkload(31);
    groove_run([forest], workload, 120);
    const ids = forest.trees[1]!;
    const level = ids.level_table_counts().findIndex((count) => count > 0);
    const address = ids.manifest.index_address(level, 0);
    device.disk[(address - 1) * block_size_small + 400]! ^= 1;
    const key = ids.manifest.key_min[level]!.slice(0, ids.options.key_words);
    // Evict it: a cold cache reads the block from disk.
    const cold = forest_reopen(device.disk, forest.root_reference, 32);
    const tree = cold.forest.trees[1]!;
    tree.lookups_start(key, 0, 1);
    forest_run_until_idle(cold.forest);
    assert(tree.refusal instanceof BlockRefusal);
    assert.equal(tree.refusal.address, address);
    assert.equal(tree.refusal.tree_id, 2);
    assert.match(tree.refusal.message, new RegExp(`^lsm: block ${address} of tree 2 refused`));
    assert.equal(tree.lookup_status[0], lookup_pending);
    // The object and index trees do not read that block: they answer in full.
    const models = workload.models_copy();
    for (const tree_index of [0, 2]) {
        const other = cold.forest.trees[tree_index]!;
        const keys = [...models[tree_index]!.values.keys()]
            .slice(0, other.options.lookup_count_max);
        const found = lookups(other, other.device, keys);
        keys.forEach((asked, index) => {
            assert.equal(found[index], models[tree_index]!.values.get(asked));
        });
    }
});

test('lsm forest over Storage: crashes mid-compaction and mid-checkpoint reopen the durable root',
    () => {
        const block = 4096;
        const grid_blocks = 2048;
        const options = forest_options_small();
        const layout = new ZoneLayout({ ...config_test, block_size: block,
            grid_block_count: grid_blocks });
        const size = forest_buffer_count(options, block, grid_blocks) * block;
        const arena = new Arena(2 * size + block);
        const offsets_forest = [arena.allocate(size, block), arena.allocate(size, block)];
        for (const mode of [CrashMode.random, CrashMode.torn, CrashMode.applied]) {
            const storage = new SimulatorStorage(arena, layout, {
                seed: 40 + mode, latency_ticks_min: 0, latency_ticks_max: 4,
                operations_max: 512, dsync: true,
            });
            const forest = new Forest(options, new StorageBlockDevice(storage, 512),
                offsets_forest[0]!);
            const workload = new GrooveWorkload(40 + mode);
            groove_run([forest], workload, 96);
            const root = forest.root_reference.slice();
            const models = workload.models_copy();
            // Compactions, then a checkpoint cut short: writes in flight lost, torn or applied.
            groove_run([forest], workload, 2 * forest.bar_beat_count, false);
            forest.checkpoint_start();
            for (let tick = 0; tick < 2; tick++) storage.tick();
            assert(storage.in_flight > 0, 'the crash interrupts the checkpoint');
            storage.crash(mode);
            const reopened = new Forest(options, new StorageBlockDevice(storage, 512),
                offsets_forest[1]!);
            reopened.open(root, 0);
            forest_run_until_idle(reopened);
            assert.equal(reopened.open_refusal, null);
            workload.verify(reopened, models);
            // It goes on: more ops and checkpoints over the same storage.
            groove_run([reopened], new GrooveWorkload(50 + mode), 2 * forest.bar_beat_count);
        }
    });

test('lsm forest: more manifest changes between two checkpoints than sized is a loud error', () => {
    const options = forest_options_small({
        checkpoint: { manifest_events_max: 8, manifest_log_blocks_max: 64 },
    });
    const { forest } = forest_make(options, 4096, 3);
    assert.throws(() => groove_run([forest], new GrooveWorkload(3), 200, false),
        /^AssertionError.*: lsm: more than 8 manifest changes between two checkpoints$/s);
});

test('lsm forest: a checkpoint whose free set omits a table block is refused on open', () => {
    const { forest, device } = forest_make(forest_options_small(), 8192, 61);
    groove_run([forest], new GrooveWorkload(61), 64);
    const tree = forest.trees[0]!;
    const level = tree.level_table_counts().findIndex((count) => count > 0);
    const table = tree.manifest.index_address(level, 0);
    // Forge a well-formed checkpoint that disagrees with itself: the free set block with the
    // table's bit cleared, resealed; the root naming the forged block, resealed.
    const disk = device.disk.slice();
    const block = block_size_small;
    const root_address = reference_address(forest.root_reference, 0);
    const root = (root_address - 1) * block;
    const payload = block - header_size;
    const index = Math.floor((table >>> 3) / payload);
    const free_set_block = blocks_of_type(device, BlockType.lsm_free_set).find((address) =>
        u32_read(disk, (address - 1) * block + offsets.block.metadata) === index &&
        u64_read(disk, (address - 1) * block + offsets.block.snapshot) === forest.beat)!;
    const at = (free_set_block - 1) * block;
    disk[at + header_size + ((table >>> 3) % payload)]! &= ~(1 << (table & 7));
    block_seal(disk, at, cluster, free_set_block, forest.beat, BlockType.lsm_free_set, block,
        index, forest.checkpoint.geometry.free_set_block_count);
    // The root's free set references follow its tree entries (tree id, count, reference each).
    const references = root + header_size + 64 + forest.trees.length * 40;
    reference_write(disk, references + index * 32, disk, at);
    block_seal(disk, root, cluster, root_address, forest.beat, BlockType.lsm_root, block, 0, 0);
    const forged = new Uint8Array(32);
    reference_write(forged, 0, disk, root);
    const made = forest_make(forest_options_small(), 8192, 62);
    made.device.disk.set(disk);
    made.forest.open(forged, 0);
    forest_run_until_idle(made.forest);
    assert(made.forest.open_refusal instanceof BlockRefusal);
    assert.equal(made.forest.open_refusal.address, root_address);
    assert.equal(made.forest.open_refusal.message, `lsm: block ${root_address} of the forest ` +
        `checkpoint refused: tree 1: table block ${table} is not acquired`);
});
