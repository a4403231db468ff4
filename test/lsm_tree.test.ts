// The LSM tree against a reference model. Goal: every lookup and scan answers exactly what a
// sorted map of the same puts and removes answers, at every point of a run that flushes,
// compacts and moves tables through every level. Method: seeded random sequences of puts,
// removes, lookups and scans, one compaction beat per op, compared after every lookup and scan;
// then edge cases with exact expected results.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

import { Prng } from '../lib/prng';
import { key_to_bigint } from '../lib/lsm/key';
import { MemoryTable } from '../lib/lsm/table_memory';
import { BlockRefusal, lookup_pending } from '../lib/lsm/tree';
import type { Tree } from '../lib/lsm/tree';
import type { MemoryBlockDevice } from '../lib/lsm/block_device';
import {
    beats, lookups, Model, options_small, put, remove, run_until_idle, scan, tree_make,
} from './lsm_harness';

interface RunOptions {
    seed: number;
    ops: number;
    key_space: number;
    device_seed?: number;
}

/** One op: puts and removes (within the bar's share), maybe a lookup batch and a scan, a beat. */
function op_run(tree: Tree, device: MemoryBlockDevice, model: Model, prng: Prng,
    key_space: number): void {
    const options = tree.options;
    const share = Math.floor(options.bar_entry_count_max / options.bar_beat_count);
    const updates = prng.int(share + 1);
    for (let index = 0; index < updates; index++) {
        const key = BigInt(prng.int(key_space));
        if (prng.chance(1, 5)) remove(tree, model, key);
        else put(tree, model, key, BigInt(prng.u32()) * 65536n + BigInt(prng.int(65536)));
    }
    if (prng.chance(1, 2)) {
        const keys = Array.from({ length: 1 + prng.int(options.lookup_count_max) },
            () => BigInt(prng.int(key_space + 10)));
        const found = lookups(tree, device, keys);
        keys.forEach((key, index) => {
            assert.equal(found[index], model.values.get(key) ?? null, `lookup of ${key}`);
        });
    }
    if (prng.chance(1, 4)) {
        const low = BigInt(prng.int(key_space));
        const high = low + BigInt(prng.int(key_space));
        const limit = 1 + prng.int(options.scan_count_max);
        assert.deepEqual(scan(tree, device, low, high, limit), model.scan(low, high, limit),
            `scan [${low}, ${high}] limit ${limit}`);
    }
    beats(tree, device, 1);
}

function random_run(run: RunOptions): { tree: Tree; device: MemoryBlockDevice; model: Model } {
    const { tree, device } = tree_make(options_small(), 4096, run.device_seed ?? run.seed);
    const model = new Model();
    const prng = new Prng(run.seed);
    const slot_count = tree.cache.slot_count;
    for (let op = 0; op < run.ops; op++) {
        op_run(tree, device, model, prng, run.key_space);
        // The cache never grows: its slots are fixed, and no more blocks are ready than slots.
        assert.equal(tree.cache.slot_count, slot_count);
        assert(tree.cache.ready_count() <= slot_count);
    }
    return { tree, device, model };
}

test('lsm tree: random puts, removes, lookups and scans match the model', () => {
    for (const seed of [1, 2, 3]) {
        const { tree, device, model } = random_run({ seed, ops: 400, key_space: 3000 });
        // The run went through the whole machine: tables on disk in more than one level,
        // compactions that wrote, moved and evicted.
        const levels = tree.level_table_counts();
        assert(levels.filter((count) => count > 0).length >= 2, `levels ${levels}`);
        assert(tree.statistics.entries_written > 0 && tree.statistics.blocks_read > 0);
        assert(tree.cache.evictions > 0 && tree.cache.hits > 0);
        // A final full comparison: every key of the key space, and a scan of everything.
        const keys = Array.from({ length: 3010 }, (_, index) => BigInt(index));
        for (let start = 0; start < keys.length; start += 64) {
            const batch = keys.slice(start, start + 64);
            const found = lookups(tree, device, batch);
            batch.forEach((key, index) => {
                assert.equal(found[index], model.values.get(key) ?? null);
            });
        }
        assert.deepEqual(scan(tree, device, 0n, 5000n, 512), model.scan(0n, 5000n, 512));
    }
});

test('lsm tree: the same puts make byte-identical blocks, whatever the completion order', () => {
    const first = random_run({ seed: 11, ops: 200, key_space: 2000, device_seed: 1 });
    const second = random_run({ seed: 11, ops: 200, key_space: 2000, device_seed: 99 });
    assert(first.tree.statistics.blocks_written > 50);
    assert.equal(first.tree.statistics.blocks_written, second.tree.statistics.blocks_written);
    assert(Buffer.from(first.device.disk).equals(Buffer.from(second.device.disk)),
        'lsm: the grids differ');
    assert.deepEqual(first.tree.level_table_counts(), second.tree.level_table_counts());
    for (let level = 0; level < first.tree.manifest.level_count; level++) {
        assert.deepEqual(first.tree.manifest.references[level],
            second.tree.manifest.references[level]);
    }
    // A different sequence makes a different grid (the comparison is not vacuous).
    const other = random_run({ seed: 12, ops: 200, key_space: 2000, device_seed: 1 });
    assert(!Buffer.from(first.device.disk).equals(Buffer.from(other.device.disk)));
});

test('lsm tree: an empty tree answers absent and empty, and compacts nothing', () => {
    const { tree, device } = tree_make(options_small(), 256, 1);
    assert.deepEqual(lookups(tree, device, [0n, 1n, 2n ** 64n - 1n]), [null, null, null]);
    assert.deepEqual(scan(tree, device, 0n, 2n ** 64n - 1n, 10), []);
    beats(tree, device, 3 * tree.options.bar_beat_count);
    assert.deepEqual(tree.level_table_counts(), [0, 0, 0, 0]);
    assert.equal(tree.statistics.blocks_written, 0);
    assert.equal(tree.statistics.blocks_read, 0);
});

/** Puts keys 2, 4, 6, ... (gaps between them) over whole bars, then flushes them to disk. */
function even_keys_on_disk(count: number): { tree: Tree; device: MemoryBlockDevice } {
    const { tree, device } = tree_make(options_small(), 1024, 5);
    const per_beat = tree.options.bar_entry_count_max / tree.options.bar_beat_count;
    let key = 0;
    for (let beat = 0; key < count; beat++) {
        for (let index = 0; index < per_beat && key < count; index++) {
            key += 1;
            put(tree, null, BigInt(2 * key), BigInt(2 * key) * 1000n);
        }
        beats(tree, device, 1);
    }
    // Two more bars: the last mutable table becomes immutable, then reaches level 0.
    beats(tree, device, 2 * tree.options.bar_beat_count);
    return { tree, device };
}

test('lsm tree: keys at data block and table boundaries', () => {
    const count = 1000;
    const { tree, device } = even_keys_on_disk(count);
    const per_block = tree.layout.data_entry_count_max;
    assert(tree.manifest.table_count_total() >= 2, 'the keys span several tables');
    const keys: bigint[] = [];
    const expected: Array<bigint | null> = [];
    for (let block = 0; block * per_block < count; block++) {
        // The first and last key of each data block (sequential keys fill blocks in order),
        // and the absent keys on either side of each.
        for (const index of [block * per_block + 1, Math.min(count, (block + 1) * per_block)]) {
            for (const key of [2 * index - 1, 2 * index, 2 * index + 1]) {
                keys.push(BigInt(key));
                expected.push(key % 2 === 0 ? BigInt(key) * 1000n : null);
            }
        }
    }
    for (let start = 0; start < keys.length; start += 64) {
        assert.deepEqual(lookups(tree, device, keys.slice(start, start + 64)),
            expected.slice(start, start + 64));
    }
    // A scan across a block boundary starting between keys, and one past the last key.
    const low = BigInt(2 * per_block - 1);
    const across = scan(tree, device, low, low + 10n, 100);
    assert.deepEqual(across.map(([key]) => key), [0n, 2n, 4n, 6n, 8n].map((d) => low + 1n + d));
    assert.deepEqual(scan(tree, device, BigInt(2 * count + 1), 10n ** 9n, 10), []);
    assert.deepEqual(scan(tree, device, BigInt(2 * count), BigInt(2 * count), 10),
        [[BigInt(2 * count), BigInt(2 * count) * 1000n]]);
});

test('lsm tree: a range that crosses tables and levels, with a limit', () => {
    const count = 1000;
    const { tree, device } = even_keys_on_disk(count);
    // Newer values for some keys, still in memory: the scan merges memory and every level.
    for (let key = 100; key <= 120; key += 4) put(tree, null, BigInt(key), 7n);
    const results = scan(tree, device, 0n, BigInt(2 * count), 512);
    assert.equal(results.length, 512);
    results.forEach(([key, value], index) => {
        assert.equal(key, BigInt(2 * (index + 1)));
        const updated = key >= 100n && key <= 120n && key % 4n === 0n;
        assert.equal(value, updated ? 7n : key * 1000n);
    });
    const tail = scan(tree, device, 1025n, BigInt(2 * count), 512);
    assert.deepEqual(tail.map(([key]) => key),
        Array.from({ length: count - 512 }, (_, index) => BigInt(2 * (index + 513))));
});

test('lsm tree: tombstones shadow older values in memory, in level 0 and below', () => {
    const { tree, device } = even_keys_on_disk(1000);
    const bar = tree.options.bar_beat_count;
    remove(tree, null, 10n);
    remove(tree, null, 12n);
    put(tree, null, 11n, 5n);
    // In the mutable table.
    assert.deepEqual(lookups(tree, device, [10n, 11n, 12n, 14n]), [null, 5n, null, 14000n]);
    assert.deepEqual(scan(tree, device, 9n, 14n, 10), [[11n, 5n], [14n, 14000n]]);
    // Immutable, then on disk above the older values, then compacted with them.
    for (let round = 0; round < 6; round++) {
        beats(tree, device, bar / 2);
        assert.deepEqual(lookups(tree, device, [10n, 11n, 12n, 14n]), [null, 5n, null, 14000n]);
        assert.deepEqual(scan(tree, device, 9n, 14n, 10), [[11n, 5n], [14n, 14000n]]);
    }
    // Put again after the removal: the newest entry wins again.
    put(tree, null, 10n, 1n);
    beats(tree, device, 2 * bar);
    assert.deepEqual(lookups(tree, device, [10n, 12n]), [1n, null]);
});

test('lsm tree: a corrupt block is refused with its address and tree, and nothing else', () => {
    const { tree, device } = even_keys_on_disk(300);
    const level = tree.level_table_counts().findIndex((count) => count > 0);
    const address = tree.manifest.index_address(level, 0);
    const at = (address - 1) * device.block_size_bytes + 300;
    device.disk[at]! ^= 1;
    // The table's first key: its lookup reads that index block (the cache is cold).
    const key = tree.manifest.key_min[level]!.slice(0, tree.options.key_words);
    tree.lookups_start(key, 0, 1);
    run_until_idle(tree, device);
    const refusal = tree.refusal;
    assert(refusal instanceof BlockRefusal);
    assert.equal(refusal.address, address);
    assert.equal(refusal.tree_id, 1);
    assert.equal(refusal.message,
        `lsm: block ${address} of tree 1 refused: not the block its parent names`);
    // Nothing was answered from it, and the refused block was not cached.
    assert.equal(tree.lookup_status[0], lookup_pending);
    assert.equal(tree.cache.peek(address), -1);
    // The tree keeps serving: a block repaired (here: the bit flipped back) reads again.
    device.disk[at]! ^= 1;
    const value = key_to_bigint(key, 0, tree.options.key_words) * 1000n;
    assert.deepEqual(lookups(tree, device, [key_to_bigint(key, 0, tree.options.key_words)]),
        [value]);
    assert.equal(tree.refusal, null);
});

test('lsm tree: compaction is paced: an even share of its input per beat of its half-bar', () => {
    const { tree, device } = tree_make(options_small(), 1024, 9);
    const bar = tree.options.bar_beat_count;
    const count = tree.options.bar_entry_count_max;
    for (let key = 0; key < count; key++) put(tree, null, BigInt(key * 7), BigInt(key));
    // First half-bar: the puts become the immutable table; nothing on disk to compact yet.
    beats(tree, device, bar / 2);
    assert.equal(tree.statistics.beat_entries_max, 0);
    assert.deepEqual(tree.level_table_counts(), [0, 0, 0, 0]);
    // Second half: the immutable table is merged into level 0, a quota per beat.
    const quota = Math.ceil(count / (bar / 2));
    for (let beat = 0; beat < bar / 2; beat++) {
        beats(tree, device, 1);
        assert.equal(tree.statistics.beat_entries_last, Math.min(quota, count - beat * quota));
        assert.equal(tree.manifest.table_count_total(), beat === bar / 2 - 1 ? 1 : 0);
    }
    assert.equal(tree.manifest.entry_count[0]![0], count);
    assert.equal(tree.statistics.entries_written, count);
    assert.equal(tree.statistics.write_amplification(), 1);
    // A second table that overlaps the first: merged with it, so the bytes written double.
    for (let key = 0; key < count; key++) put(tree, null, BigInt(key * 7 + 1), BigInt(key));
    beats(tree, device, bar);
    assert.equal(tree.statistics.entries_written, count + 2 * count);
    assert.equal(tree.statistics.beat_entries_max, Math.ceil(2 * count / (bar / 2)));
});

test('lsm tree: a long run keeps tables well filled and every level within its capacity', () => {
    const { tree, device } = tree_make(options_small(), 8192, 21);
    const model = new Model();
    const prng = new Prng(21);
    const key_space = 6000;
    const share = tree.options.bar_entry_count_max / tree.options.bar_beat_count;
    for (let op = 0; op < 1500; op++) {
        for (let index = 0; index < share; index++) {
            const key = BigInt(prng.int(key_space));
            if (prng.chance(1, 5)) remove(tree, model, key);
            else put(tree, model, key, BigInt(op));
        }
        beats(tree, device, 1);
    }
    const manifest = tree.manifest;
    const deepest = manifest.level_count - 1;
    let entries = 0;
    for (let table = 0; table < manifest.counts[deepest]!; table++) {
        entries += manifest.entry_count[deepest]![table]!;
    }
    // Partly filled tables are merged into their neighbours: on average well over half full.
    const fill = entries / (manifest.counts[deepest]! * tree.layout.table_entry_count_max);
    assert(fill > 0.6, `deepest level fill ${fill.toFixed(2)}`);
    for (let level = 0; level < manifest.level_count; level++) {
        assert(manifest.counts[level]! <= manifest.tables_max[level]!);
    }
    const keys = Array.from({ length: key_space }, (_, index) => BigInt(index));
    for (let start = 0; start < keys.length; start += 64) {
        const batch = keys.slice(start, start + 64);
        const found = lookups(tree, device, batch);
        batch.forEach((key, index) => {
            assert.equal(found[index], model.values.get(key) ?? null);
        });
    }
});

test('lsm tree: blocks released by compaction survive until the next checkpoint is durable', () => {
    const { tree, device } = tree_make(options_small(), 4096, 31);
    const prng = new Prng(31);
    const bar = tree.options.bar_beat_count;
    const share = tree.options.bar_entry_count_max / bar;
    const fill = (beat_count: number, checkpointed: boolean): void => {
        for (let beat = 0; beat < beat_count; beat++) {
            for (let index = 0; index < share; index++) {
                put(tree, null, BigInt(prng.int(2000)), BigInt(prng.u32()));
            }
            if (checkpointed) beats(tree, device, 1);
            else {
                tree.compact_beat();
                run_until_idle(tree, device);
            }
        }
    };
    fill(6 * bar, true);
    // The durable checkpoint's blocks: every block acquired at the bar's end, and their bytes.
    assert.equal(device.releasing_count, 0);
    const named: number[] = [];
    for (let address = 1; address <= device.free_set.block_count; address++) {
        if (device.free_set.is_acquired(address)) named.push(address);
    }
    const bytes = named.map((address) => device.disk.slice((address - 1) * 1024, address * 1024));
    assert(named.length > 20);
    // Compactions without a checkpoint: they merge and release many of those blocks.
    fill(4 * bar, false);
    const released = named.filter((address) => device.is_releasing(address));
    assert(released.length > named.length / 4, `released ${released.length} of ${named.length}`);
    named.forEach((address, index) => {
        assert(device.free_set.is_acquired(address), `block ${address} was freed`);
        const now = device.disk.subarray((address - 1) * 1024, address * 1024);
        assert(Buffer.from(now).equals(Buffer.from(bytes[index]!)), `block ${address} changed`);
    });
    // The checkpoint that stops naming them is durable: exactly the released ones are freed.
    const releasing = device.releasing_count;
    device.checkpoint_start();
    put(tree, null, 1n, 1n);
    fill(1, false);
    // A block released while the checkpoint is written waits for the one after.
    const later = device.releasing_count - releasing;
    assert.equal(device.checkpoint_durable(), releasing);
    assert.equal(device.releasing_count, later);
    for (const address of released) assert(!device.free_set.is_acquired(address));
    assert.throws(() => device.checkpoint_durable(), /no checkpoint was started/);
});

test('lsm tree: merging by runs writes the grid that merging entry by entry wrote', () => {
    // Digests of the grids that the entry-by-entry merge (before runs, at 9d0d933) wrote for
    // these runs: random keys with tombstones, sequential keys (long runs), a small key space.
    const expected = new Map([[11, '27a5af6f93903833'], [12, '4eb114f44a464b85'],
        [13, '447f608f96bdbcd3']]);
    for (const [seed, key_space, sequential] of [[11, 2000, false], [12, 100000, true],
        [13, 300, false]] as const) {
        const { tree, device } = tree_make(options_small(), 4096, seed);
        const prng = new Prng(seed);
        const share = Math.floor(tree.options.bar_entry_count_max / tree.options.bar_beat_count);
        let next = 0;
        for (let op = 0; op < 400; op++) {
            const updates = prng.int(share + 1);
            for (let index = 0; index < updates; index++) {
                const key = sequential ? BigInt(next++) : BigInt(prng.int(key_space));
                if (prng.chance(1, 5)) remove(tree, null, key);
                else put(tree, null, key, BigInt(prng.u32()));
            }
            beats(tree, device, 1);
        }
        assert(tree.statistics.blocks_written > 200);
        const digest = createHash('sha256').update(device.disk).digest('hex').slice(0, 16);
        assert.equal(digest, expected.get(seed), `the grid of seed ${seed}`);
    }
});

test('lsm memory table: the radix order is the key order, whichever words vary', () => {
    const prng = new Prng(5);
    for (const key_words of [1, 2, 4, 6]) {
        for (const count of [0, 1, 2, 3, 255, 256, 257, 3000]) {
            const table = new MemoryTable(key_words, 1, 3000);
            const key = new Uint32Array(key_words);
            const expected: bigint[] = [];
            const seen = new Set<bigint>();
            while (table.count < count) {
                // Words drawn from few values, from all 32 bits, or constant: digits that vary
                // and digits every key shares (skipped passes) in every position; one word of
                // all 32 bits keeps enough keys distinct.
                for (let word = 0; word < key_words; word++) {
                    const kind = word === count % key_words ? 1 : (word + count) % 3;
                    key[word] = kind === 0 ? prng.int(4) : kind === 1 ? prng.u32() : 0x01020304;
                }
                const value = key_to_bigint(key, 0, key_words);
                if (seen.has(value)) continue;
                seen.add(value);
                expected.push(value);
                table.put(key, 0, key, 0, false);
            }
            table.sort();
            expected.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
            const ordered = Array.from(table.order.subarray(0, count),
                (entry) => key_to_bigint(table.keys, entry * key_words, key_words));
            assert.deepEqual(ordered, expected, `key_words ${key_words} count ${count}`);
        }
    }
});
