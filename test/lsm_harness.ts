// Test harness for lib/lsm: a tree over the in-memory block device, a reference model (a Map and
// a sorted array of its keys, written for clarity), and drivers that run an operation until the
// tree is idle and compare its answers with the model's.
import assert from 'node:assert/strict';

import { MemoryBlockDevice } from '../lib/lsm/block_device';
import type { BlockDevice } from '../lib/lsm/block_device';
import { key_from_bigint, key_to_bigint } from '../lib/lsm/key';
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
        // The tree is busy only while it waits for I/O it submitted.
        assert(delivered > 0 || tree.idle, 'lsm test: the tree waits but nothing is in flight');
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
        return key_to_bigint(tree.lookup_values, index * options.value_words,
            options.value_words);
    });
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
            key_to_bigint(tree.scan_values, index * options.value_words, options.value_words)]);
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
