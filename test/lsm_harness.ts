// Test harness for lib/lsm: a tree over the in-memory block device, a reference model (a Map and
// a sorted array of its keys, written for clarity), and drivers that run an operation until the
// tree is idle and compare its answers with the model's.
import assert from 'node:assert/strict';

import { MemoryBlockDevice } from '../lib/lsm/block_device';
import type { BlockDevice } from '../lib/lsm/block_device';
import { Forest, forest_buffer_count } from '../lib/lsm/forest';
import type { ForestOptions } from '../lib/lsm/forest';
import { key_from_bigint, key_to_bigint } from '../lib/lsm/key';
import { Prng } from '../lib/prng';
import {
    lookup_absent, lookup_found, Tree, tree_buffer_count, TreeOptions,
} from '../lib/lsm/tree';

export const cluster = new Uint8Array(16).fill(7);

export function options_small(overrides: Partial<TreeOptions> = {}): TreeOptions {
    return {
        tree_id: 1, key_words: 2, value_words: 2, bar_entry_count_max: 200, bar_beat_count: 8,
        level_count: 4, growth_factor: 2, cache_size_bytes: 64 * 1024, lookup_count_max: 64,
        scan_count_max: 512, cluster, ...overrides,
    };
}

export const block_size_small = 1024;

export function tree_make(options: TreeOptions, block_count: number, seed: number,
    block_size_bytes = block_size_small): { tree: Tree; device: MemoryBlockDevice } {
    const memory = new Uint8Array(tree_buffer_count(options, block_size_bytes) * block_size_bytes);
    const reads_max = options.lookup_count_max + 4 * options.level_count;
    const operations_max = reads_max + 4 * options.level_count;
    const device = new MemoryBlockDevice(memory, block_count, block_size_bytes, operations_max,
        seed);
    return { tree: new Tree(options, device, 0), device };
}

/** Ticks the device until the tree's operation has ended (bounded). */
export function run_until_idle(tree: Tree, device: BlockDevice): void {
    for (let tick = 0; tick < 1_000_000 && !tree.idle; tick++) {
        const delivered = device.tick();
        // The tree is busy only while it waits for I/O it submitted (a device with latency may
        // deliver nothing on some ticks).
        assert(delivered > 0 || tree.idle || device.in_flight > 0,
            'lsm test: the tree waits but nothing is in flight');
    }
    assert(tree.idle);
}

export class Model {
    readonly values = new Map<bigint, bigint>();

    put(key: bigint, value: bigint): void {
        this.values.set(key, value);
    }

    remove(key: bigint): void {
        this.values.delete(key);
    }

    scan(key_min: bigint, key_max: bigint, limit: number): Array<[bigint, bigint]> {
        const keys = [...this.values.keys()].filter((key) => key >= key_min && key <= key_max)
            .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        return keys.slice(0, limit).map((key) => [key, this.values.get(key)!]);
    }
}

const scratch_key = new Uint32Array(8);
const scratch_value = new Uint32Array(64);

export function put(tree: Tree, model: Model | null, key: bigint, value: bigint): void {
    const options = tree.options;
    key_from_bigint(scratch_key, 0, key, options.key_words);
    key_from_bigint(scratch_value, 0, value, options.value_words);
    tree.put(scratch_key, 0, scratch_value, 0);
    model?.put(key, value);
}

export function remove(tree: Tree, model: Model | null, key: bigint): void {
    key_from_bigint(scratch_key, 0, key, tree.options.key_words);
    tree.remove(scratch_key, 0);
    model?.remove(key);
}

/** Runs a batch of lookups; returns each key's value, or null when absent. */
export function lookups(tree: Tree, device: BlockDevice, keys: readonly bigint[]): Array<bigint |
    null> {
    const options = tree.options;
    const words = new Uint32Array(keys.length * options.key_words);
    keys.forEach((key, index) => key_from_bigint(words, index * options.key_words, key,
        options.key_words));
    tree.lookups_start(words, 0, keys.length);
    run_until_idle(tree, device);
    return keys.map((_, index) => {
        const status = tree.lookup_status[index];
        assert(status === lookup_found || status === lookup_absent);
        if (status === lookup_absent) return null;
        return value_read(tree.lookup_values, index * options.value_words, options.value_words);
    });
}

/** A value as a number (a tree without values, such as an index, answers 0). */
function value_read(words: Uint32Array, word: number, value_words: number): bigint {
    return value_words === 0 ? 0n : key_to_bigint(words, word, value_words);
}

export function scan(tree: Tree, device: BlockDevice, key_min: bigint, key_max: bigint,
    limit: number): Array<[bigint, bigint]> {
    const options = tree.options;
    const bounds = new Uint32Array(2 * options.key_words);
    key_from_bigint(bounds, 0, key_min, options.key_words);
    key_from_bigint(bounds, options.key_words, key_max, options.key_words);
    tree.scan_start(bounds, 0, bounds, options.key_words, limit);
    run_until_idle(tree, device);
    const results: Array<[bigint, bigint]> = [];
    for (let index = 0; index < tree.scan_count; index++) {
        results.push([key_to_bigint(tree.scan_keys, index * options.key_words, options.key_words),
            value_read(tree.scan_values, index * options.value_words, options.value_words)]);
    }
    return results;
}

/**
 * Runs `count` beats. At each bar's end a checkpoint is started and declared durable at once: it
 * stands in for the replica's checkpoint, without which released blocks are never freed.
 */
export function beats(tree: Tree, device: BlockDevice, count: number): void {
    for (let beat = 0; beat < count; beat++) {
        tree.compact_beat();
        run_until_idle(tree, device);
        if (tree.beat % tree.options.bar_beat_count === 0) checkpoint_instant(device);
    }
}

/** A checkpoint that is durable as soon as it starts: what was released so far is freed. */
export function checkpoint_instant(device: BlockDevice): number {
    device.checkpoint_start();
    return device.checkpoint_durable();
}

/** Three trees shaped like a groove: objects by timestamp, ids to timestamps, an index. */
export function forest_options_small(overrides: Partial<ForestOptions> = {}): ForestOptions {
    const common = { bar_entry_count_max: 160, bar_beat_count: 8, level_count: 4,
        growth_factor: 2, cache_size_bytes: 0, lookup_count_max: 64, scan_count_max: 256,
        cluster };
    return {
        trees: [
            { ...common, tree_id: 1, key_words: 2, value_words: 8 },
            { ...common, tree_id: 2, key_words: 4, value_words: 2 },
            { ...common, tree_id: 3, key_words: 6, value_words: 0 },
        ],
        cache_size_bytes: 64 * 1024,
        checkpoint: { manifest_events_max: 1024, manifest_log_blocks_max: 2048 }, ...overrides,
    };
}

export function forest_make(options: ForestOptions, block_count: number, seed: number,
    block_size_bytes = block_size_small): { forest: Forest; device: MemoryBlockDevice } {
    const memory = new Uint8Array(forest_buffer_count(options, block_size_bytes, block_count) *
        block_size_bytes);
    let operations_max = 0;
    for (const tree of options.trees) {
        operations_max += tree.lookup_count_max + 8 * tree.level_count;
    }
    const device = new MemoryBlockDevice(memory, block_count, block_size_bytes, operations_max,
        seed);
    return { forest: new Forest(options, device, 0), device };
}

/** Writes a checkpoint of the forest and declares it durable; returns its root reference. */
export function forest_checkpoint(forest: Forest): Uint8Array {
    forest.checkpoint_start();
    forest_run_until_idle(forest);
    const root = forest.root_reference.slice();
    forest.checkpoint_durable();
    return root;
}

/** Ticks the device until every tree of the forest is idle (bounded). */
export function forest_run_until_idle(forest: Forest): void {
    for (let tick = 0; tick < 1_000_000 && !forest.idle; tick++) {
        const delivered = forest.device.tick();
        // A device with latency may deliver nothing on a tick while requests are in flight.
        assert(delivered > 0 || forest.idle || forest.device.in_flight > 0,
            'lsm test: the forest waits but nothing is in flight');
    }
    assert(forest.idle);
}

interface GrooveObject {
    timestamp: bigint;
    id: bigint;
    account: bigint;
}

/**
 * A groove's worth of puts and removes over a forest of `forest_options_small`: each object is
 * put in the object tree (timestamp → value), the id tree (id → timestamp) and the index tree
 * ((account, timestamp) → nothing); a removal removes all three. A model per tree.
 */
export class GrooveWorkload {
    readonly models = [new Model(), new Model(), new Model()];
    private readonly live: GrooveObject[] = [];
    private timestamp = 1000n;
    private readonly prng: Prng;

    constructor(seed: number) {
        this.prng = new Prng(seed);
    }

    /** One op's puts and removes (within every tree's share of a bar), into every forest. */
    op(forests: readonly Forest[]): void {
        const prng = this.prng;
        const options = forests[0]!.trees[0]!.options;
        const share = options.bar_entry_count_max / options.bar_beat_count;
        const removes = this.live.length > 0 ? prng.int(4) : 0;
        for (let count = 0; count < removes; count++) {
            const [gone] = this.live.splice(prng.int(this.live.length), 1);
            this.apply(forests, gone!, true, 0n);
        }
        const creates = prng.int(share - removes + 1);
        for (let count = 0; count < creates; count++) {
            this.timestamp += 1n + BigInt(prng.int(3));
            const object = { timestamp: this.timestamp, account: BigInt(prng.int(12)),
                id: (BigInt(prng.u32()) << 96n) | (BigInt(prng.u32()) << 32n) | BigInt(count) };
            this.live.push(object);
            this.apply(forests, object, false, (BigInt(prng.u32()) << 224n) | object.id);
        }
    }

    private apply(forests: readonly Forest[], object: GrooveObject, removal: boolean,
        value: bigint): void {
        const keys = [object.timestamp, object.id, (object.account << 64n) | object.timestamp];
        const values = [value, object.timestamp, 0n];
        forests.forEach((forest, forest_index) => {
            for (let tree = 0; tree < 3; tree++) {
                const model = forest_index === 0 ? this.models[tree]! : null;
                if (removal) remove(forest.trees[tree]!, model, keys[tree]!);
                else put(forest.trees[tree]!, model, keys[tree]!, values[tree]!);
            }
        });
    }

    /** The models' contents now (what a checkpoint taken now must give back). */
    models_copy(): Model[] {
        return this.models.map((model) => {
            const copy = new Model();
            for (const [key, value] of model.values) copy.put(key, value);
            return copy;
        });
    }

    /** Every key of every model reads back, absent keys are absent, every account scans. */
    verify(forest: Forest, models: readonly Model[] = this.models): void {
        for (let tree_index = 0; tree_index < 3; tree_index++) {
            const tree = forest.trees[tree_index]!;
            const model = models[tree_index]!;
            const keys = [...model.values.keys(), 1n, 999n, (1n << 60n) + 3n];
            for (let start = 0; start < keys.length; start += tree.options.lookup_count_max) {
                const batch = keys.slice(start, start + tree.options.lookup_count_max);
                const found = lookups(tree, tree.device, batch);
                batch.forEach((key, position) => {
                    assert.equal(found[position], model.values.get(key) ?? null,
                        `tree ${tree.options.tree_id}: lookup of ${key}`);
                });
            }
        }
        const index = forest.trees[2]!;
        for (let account = 0n; account < 13n; account++) {
            const low = account << 64n;
            const high = low | ((1n << 64n) - 1n);
            assert.deepEqual(scan(index, index.device, low, high, 256),
                models[2]!.scan(low, high, 256), `scan of account ${account}`);
        }
    }
}

/**
 * Runs `count` ops of the workload into every forest, one beat each; at each bar's end every
 * forest writes a checkpoint made durable at once (or none when `checkpointed` is false).
 */
export function groove_run(forests: readonly Forest[], workload: GrooveWorkload, count: number,
    checkpointed = true): void {
    for (let op = 0; op < count; op++) {
        workload.op(forests);
        for (const forest of forests) {
            forest.compact_beat();
            forest_run_until_idle(forest);
            if (checkpointed && forest.beat % forest.bar_beat_count === 0) {
                forest_checkpoint(forest);
            }
        }
    }
}
