// A forest: several trees over one block device, one block cache and one free set, compacted on
// one schedule (TigerBeetle's forest of grooves: an object tree, an id tree, index trees).
//
// Every tree runs its compaction beat in each forest beat, one tree after another in tree order:
// a tree acquires blocks only during its beat, so the order in which addresses are handed out
// depends only on the operations, never on when I/O completes, and replicas that execute the same
// ops acquire the same addresses. Within a tree's beat its I/O is issued in rounds as before.
//
// The trees share the device through a DeviceShare each: it tags a tree's requests with the
// tree's index in the high bits, and the forest, the device's one owner, routes every completion
// back to its tree. Lookups and scans run on the trees themselves (`forest.trees[i]`), between
// beats; the caller ticks the device until `forest.idle`.
import assert from 'node:assert/strict';

import type { BlockCompletionTarget, BlockDevice } from './block_device';
import { BlockCache } from './block_cache';
import { Tree, tree_buffer_count } from './tree';
import type { TreeOptions } from './tree';

const tag_bits = 16;
const tag_mask = (1 << tag_bits) - 1;
export const forest_tree_count_max = 64;

export interface ForestOptions {
    trees: readonly TreeOptions[];
    /** The one cache every tree reads through. */
    cache_size_bytes: number;
}

/** One tree's view of the forest's device: its request tags carry the tree's index. */
class DeviceShare implements BlockDevice {
    readonly block_size_bytes: number;
    readonly memory: Uint8Array;
    target: BlockCompletionTarget | null = null;
    private readonly device: BlockDevice;
    private readonly tag_base: number;

    constructor(device: BlockDevice, index: number) {
        assert(index >= 0 && index < forest_tree_count_max);
        this.device = device;
        this.block_size_bytes = device.block_size_bytes;
        this.memory = device.memory;
        this.tag_base = index << tag_bits;
    }

    get in_flight(): number {
        return this.device.in_flight;
    }

    target_set(target: BlockCompletionTarget): void {
        assert(this.target === null, 'lsm: the device share has one owner');
        this.target = target;
    }

    acquire(): number {
        return this.device.acquire();
    }

    release(address: number): void {
        this.device.release(address);
    }

    checkpoint_start(): void {
        assert.fail('lsm: a forest checkpoints its trees together');
    }

    checkpoint_durable(): number {
        assert.fail('lsm: a forest checkpoints its trees together');
    }

    read(tag: number, address: number, memory_offset: number, size_bytes: number): void {
        assert(tag >= 0 && tag <= tag_mask, 'lsm: a tree request tag past its bits');
        this.device.read(this.tag_base | tag, address, memory_offset, size_bytes);
    }

    write(tag: number, address: number, memory_offset: number, size_bytes: number): void {
        assert(tag >= 0 && tag <= tag_mask, 'lsm: a tree request tag past its bits');
        this.device.write(this.tag_base | tag, address, memory_offset, size_bytes);
    }

    submit(): void {
        this.device.submit();
    }

    tick(): number {
        return this.device.tick();
    }
}

/** The blocks of memory a forest needs: the shared cache's slots, then every tree's buffers. */
export function forest_buffer_count(options: ForestOptions, block_size_bytes: number): number {
    assert(options.trees.length >= 1 && options.trees.length <= forest_tree_count_max);
    let count = BlockCache.slot_count_for(options.cache_size_bytes, block_size_bytes);
    for (const tree of options.trees) count += tree_buffer_count(tree, block_size_bytes, true);
    return count;
}

export class Forest implements BlockCompletionTarget {
    readonly options: ForestOptions;
    readonly device: BlockDevice;
    readonly cache: BlockCache;
    readonly trees: Tree[];
    private readonly shares: DeviceShare[];
    readonly bar_beat_count: number;
    /** Beats run so far (every tree's beat count equals it between beats). */
    beat = 0;
    /** The tree whose beat is running; -1 between beats. */
    private beat_tree = -1;

    constructor(options: ForestOptions, device: BlockDevice, memory_offset: number) {
        const block = device.block_size_bytes;
        const trees = options.trees;
        assert(trees.length >= 1 && trees.length <= forest_tree_count_max);
        assert(memory_offset % block === 0, 'lsm: the forest memory is block-aligned');
        assert(memory_offset + forest_buffer_count(options, block) * block <=
            device.memory.length);
        this.bar_beat_count = trees[0]!.bar_beat_count;
        for (let index = 0; index < trees.length; index++) {
            const tree = trees[index]!;
            assert.equal(tree.bar_beat_count, this.bar_beat_count, 'lsm: one compaction schedule');
            assert(Buffer.from(tree.cluster).equals(Buffer.from(trees[0]!.cluster)));
            for (let other = 0; other < index; other++) {
                assert(trees[other]!.tree_id !== tree.tree_id, 'lsm: tree ids are distinct');
            }
        }
        this.options = options;
        this.device = device;
        const slots = BlockCache.slot_count_for(options.cache_size_bytes, block);
        this.cache = new BlockCache(device.memory, memory_offset, slots, block);
        let offset = memory_offset + slots * block;
        this.shares = [];
        this.trees = [];
        for (let index = 0; index < trees.length; index++) {
            const share = new DeviceShare(device, index);
            this.shares.push(share);
            this.trees.push(new Tree(trees[index]!, share, offset, this.cache));
            offset += tree_buffer_count(trees[index]!, block, true) * block;
        }
        assert(offset === memory_offset + forest_buffer_count(options, block) * block);
        device.target_set(this);
    }

    get idle(): boolean {
        if (this.beat_tree !== -1) return false;
        for (const tree of this.trees) if (!tree.idle) return false;
        return true;
    }

    block_read_complete(tag: number, result: number): void {
        const share = this.shares[tag >>> tag_bits];
        assert(share !== undefined && share.target !== null, 'lsm: a completion of no tree');
        share.target.block_read_complete(tag & tag_mask, result);
        this.beat_advance();
    }

    block_write_complete(tag: number, result: number): void {
        const share = this.shares[tag >>> tag_bits];
        assert(share !== undefined && share.target !== null, 'lsm: a completion of no tree');
        share.target.block_write_complete(tag & tag_mask, result);
        this.beat_advance();
    }

    /** Runs one beat of every tree's compaction (call once per op); ends when `idle`. */
    compact_beat(): void {
        assert(this.idle, 'lsm: a forest beat while an operation runs');
        for (const tree of this.trees) assert.equal(tree.beat, this.beat);
        this.beat_tree = 0;
        this.trees[0]!.compact_beat();
        this.beat_advance();
    }

    /** Starts the next tree's beat once the current one has ended; ends the forest's beat. */
    private beat_advance(): void {
        // Each pass either returns (a tree waits on I/O) or moves to the next tree.
        for (let pass = 0; pass <= this.trees.length && this.beat_tree !== -1; pass++) {
            if (!this.trees[this.beat_tree]!.idle) return;
            assert.equal(this.trees[this.beat_tree]!.beat, this.beat + 1);
            this.beat_tree += 1;
            if (this.beat_tree === this.trees.length) {
                this.beat_tree = -1;
                this.beat += 1;
                return;
            }
            this.trees[this.beat_tree]!.compact_beat();
        }
        assert(this.beat_tree === -1, 'lsm: a forest beat did not advance');
    }
}
