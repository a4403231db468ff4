// The LSM tree's CPU cost over the in-memory block device (no disk: what the TypeScript side costs
// per put, per beat, per lookup and per scan), and its write amplification. Keys are random u128
// ids, values 128 bytes (a transfer). Then the same puts into a forest of that one tree, which
// writes a checkpoint (manifest log, free set, mutable table) at every bar's end: its puts/s as a
// ratio to the tree's (the baseline, in the same run), its blocks per checkpoint, and the blocks
// read to open its last checkpoint. Run: node dist/bench/lsm.js [put_count=200000]
import assert from 'node:assert/strict';

import { MemoryBlockDevice } from '../lib/lsm/block_device';
import { Forest, forest_buffer_count } from '../lib/lsm/forest';
import type { ForestOptions } from '../lib/lsm/forest';
import { key_from_bigint } from '../lib/lsm/key';
import { lookup_found, Tree, tree_buffer_count } from '../lib/lsm/tree';
import type { TreeOptions } from '../lib/lsm/tree';
import { Prng } from '../lib/prng';

const put_count = Number(process.argv[2] ?? 200_000);
const block_size_bytes = 64 * 1024;
const puts_per_beat = 1024;
const options: TreeOptions = {
    tree_id: 1, key_words: 4, value_words: 32, bar_entry_count_max: 32 * puts_per_beat,
    bar_beat_count: 32, level_count: 7, growth_factor: 8,
    cache_size_bytes: 64 * 1024 * 1024, lookup_count_max: 8189, scan_count_max: 8189,
    cluster: new Uint8Array(16),
};

function run_until_idle(tree: Tree, device: MemoryBlockDevice): void {
    for (let tick = 0; tick < 10_000_000 && !tree.idle; tick++) device.tick();
    assert(tree.idle);
}

function percentile(samples: number[], fraction: number): number {
    const sorted = [...samples].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

function main(): void {
    assert(Number.isSafeInteger(put_count) && put_count > 0);
    // The grid holds every entry about three times (levels in flight) plus slack.
    const block_count = Math.ceil(put_count * 144 * 3 / block_size_bytes) + 256;
    const memory = new Uint8Array(tree_buffer_count(options, block_size_bytes) *
        block_size_bytes);
    const device = new MemoryBlockDevice(memory, block_count, block_size_bytes, 16384, 1);
    const tree = new Tree(options, device, 0);
    const prng = new Prng(42);
    const keys = new Uint32Array(put_count * 4);
    const value = new Uint32Array(32);
    for (let index = 0; index < put_count; index++) {
        for (let word = 0; word < 4; word++) keys[index * 4 + word] = prng.u32();
    }
    const beat_ms: number[] = [];
    const start = performance.now();
    let put = 0;
    // Two more bars after the last put: the last mutable table reaches level 0.
    const beat_count = Math.ceil(put_count / puts_per_beat) + 2 * options.bar_beat_count;
    for (let beat = 0; beat < beat_count; beat++) {
        for (let index = 0; index < puts_per_beat && put < put_count; index++, put++) {
            value[0] = put;
            tree.put(keys, put * 4, value, 0);
        }
        const beat_start = performance.now();
        tree.compact_beat();
        run_until_idle(tree, device);
        // A checkpoint per bar, durable at once: released blocks become free.
        if (tree.beat % options.bar_beat_count === 0) {
            device.checkpoint_start();
            device.checkpoint_durable();
        }
        beat_ms.push(performance.now() - beat_start);
    }
    const put_seconds = (performance.now() - start) / 1000;
    const statistics = tree.statistics;
    console.log(`puts ${put_count}: ${(put_count / put_seconds).toFixed(0)} puts/s with ` +
        `compaction; beat p50 ${percentile(beat_ms, 0.5).toFixed(2)} ms, p99 ` +
        `${percentile(beat_ms, 0.99).toFixed(2)} ms, max ${Math.max(...beat_ms).toFixed(2)} ms`);
    console.log(`write amplification ${statistics.write_amplification().toFixed(2)} ` +
        `(entries written ${statistics.entries_written} / put ${statistics.entries_put}); ` +
        `blocks written ${statistics.blocks_written}, moved tables ${statistics.tables_moved}; ` +
        `levels ${tree.level_table_counts().join(' ')}; busiest beat merged ` +
        `${statistics.beat_entries_max} entries`);
    lookups_measure(tree, device, keys, prng);
    forest_measure(keys, block_count, put_seconds);
}

function forest_run_until_idle(forest: Forest): void {
    for (let tick = 0; tick < 10_000_000 && !forest.idle; tick++) forest.device.tick();
    assert(forest.idle);
}

function forest_make(forest_options: ForestOptions, block_count: number): Forest {
    const memory = new Uint8Array(forest_buffer_count(forest_options, block_size_bytes,
        block_count) * block_size_bytes);
    const device = new MemoryBlockDevice(memory, block_count, block_size_bytes, 16384, 1);
    return new Forest(forest_options, device, 0);
}

/** The same puts into a one-tree forest that checkpoints at every bar's end. */
function forest_measure(keys: Uint32Array, block_count: number, tree_seconds: number): void {
    const forest_options: ForestOptions = {
        trees: [options], cache_size_bytes: options.cache_size_bytes,
        checkpoint: { manifest_events_max: 4096, manifest_log_blocks_max: 4096 },
    };
    const forest = forest_make(forest_options, block_count);
    const tree = forest.trees[0]!;
    const value = new Uint32Array(32);
    const beat_count = Math.ceil(put_count / puts_per_beat) + 2 * options.bar_beat_count;
    let checkpoints = 0;
    let put = 0;
    const start = performance.now();
    for (let beat = 0; beat < beat_count; beat++) {
        for (let index = 0; index < puts_per_beat && put < put_count; index++, put++) {
            value[0] = put;
            tree.put(keys, put * 4, value, 0);
        }
        forest.compact_beat();
        forest_run_until_idle(forest);
        if (forest.beat % options.bar_beat_count !== 0) continue;
        forest.checkpoint_start();
        forest_run_until_idle(forest);
        forest.checkpoint_durable();
        checkpoints += 1;
    }
    const seconds = (performance.now() - start) / 1000;
    const checkpoint = forest.checkpoint;
    console.log(`forest (1 tree, a checkpoint per bar): ${(put_count / seconds).toFixed(0)} ` +
        `puts/s, ${(seconds / tree_seconds).toFixed(2)}x the tree's time; write amplification ` +
        `${tree.statistics.write_amplification().toFixed(2)}; ${checkpoints} checkpoints, ` +
        `${(checkpoint.blocks_written / checkpoints).toFixed(1)} blocks each; manifest log ` +
        `${checkpoint.log_block_count} blocks (${checkpoint.log_blocks_compacted} compacted)`);
    const reopened = forest_make(forest_options, block_count);
    (reopened.device as MemoryBlockDevice).disk.set((forest.device as MemoryBlockDevice).disk);
    const open_start = performance.now();
    reopened.open(forest.root_reference, 0);
    forest_run_until_idle(reopened);
    assert(reopened.open_refusal === null);
    let table_blocks = 0;
    const manifest = tree.manifest;
    for (let level = 0; level < manifest.level_count; level++) {
        for (let table = 0; table < manifest.counts[level]!; table++) {
            table_blocks += manifest.data_block_count[level]![table]! + 1;
        }
    }
    console.log(`open: ${reopened.checkpoint.blocks_read} blocks read (the tables hold ` +
        `${table_blocks}) in ${(performance.now() - open_start).toFixed(1)} ms`);
}

function lookups_measure(tree: Tree, device: MemoryBlockDevice, keys: Uint32Array,
    prng: Prng): void {
    const batch = 8189;
    const batches = 20;
    const asked = new Uint32Array(batch * 4);
    let found = 0;
    const reads_before = tree.statistics.blocks_read;
    const start = performance.now();
    for (let round = 0; round < batches; round++) {
        for (let index = 0; index < batch; index++) {
            const source = prng.int(put_count) * 4;
            asked.set(keys.subarray(source, source + 4), index * 4);
        }
        tree.lookups_start(asked, 0, batch);
        run_until_idle(tree, device);
        for (let index = 0; index < batch; index++) {
            if (tree.lookup_status[index] === lookup_found) found += 1;
        }
    }
    const seconds = (performance.now() - start) / 1000;
    assert.equal(found, batch * batches, 'every key put is found');
    const reads = tree.statistics.blocks_read - reads_before;
    console.log(`lookups: ${(batch * batches / seconds).toFixed(0)} lookups/s in batches of ` +
        `${batch} (random keys, 64 MiB cache: hits ${tree.cache.hits}, misses ` +
        `${tree.cache.misses}, block reads ${reads})`);
    const bounds = new Uint32Array(8);
    key_from_bigint(bounds, 4, (1n << 128n) - 1n, 4);
    const scan_start = performance.now();
    tree.scan_start(bounds, 0, bounds, 4, 8189);
    run_until_idle(tree, device);
    const scan_seconds = (performance.now() - scan_start) / 1000;
    console.log(`scan: ${tree.scan_count} entries from the smallest key in ` +
        `${(scan_seconds * 1000).toFixed(1)} ms`);
}

main();
