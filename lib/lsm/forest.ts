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
//
// At a bar's end the forest can write a checkpoint (forest_checkpoint.ts): a root block whose
// reference the superblock will carry; `open(root)` restores a fresh forest from it.
import assert from 'node:assert/strict';

import type { FreeSet } from '../vsr/grid';
import type { BlockCompletionTarget, BlockDevice } from './block_device';
import { BlockCache } from './block_cache';
import { CheckpointGeometry, ForestCheckpoint } from './forest_checkpoint';
import type { CheckpointOptions } from './forest_checkpoint';
import { Tree, tree_buffer_count } from './tree';
import type { BlockRefusal } from './tree';
import type { TreeOptions } from './tree';

const tag_bits = 16;
const tag_mask = (1 << tag_bits) - 1;
export const forest_tree_count_max = 64;

export interface ForestOptions {
    trees: readonly TreeOptions[];
    /** The one cache every tree reads through. */
    cache_size_bytes: number;
    checkpoint: CheckpointOptions;
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

    get free_set(): FreeSet {
        return this.device.free_set;
    }

    is_releasing(address: number): boolean {
        return this.device.is_releasing(address);
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

/**
 * The blocks of memory a forest needs on a grid of `grid_block_count` blocks: the shared cache's
 * slots, every tree's buffers, then the checkpoint's.
 */
export function forest_buffer_count(options: ForestOptions, block_size_bytes: number,
    grid_block_count: number): number {
    assert(options.trees.length >= 1 && options.trees.length <= forest_tree_count_max);
    let count = BlockCache.slot_count_for(options.cache_size_bytes, block_size_bytes);
    for (const tree of options.trees) count += tree_buffer_count(tree, block_size_bytes, true);
    const geometry = new CheckpointGeometry(options.trees, block_size_bytes, grid_block_count,
        options.checkpoint);
    return count + geometry.buffer_count;
}

export class Forest implements BlockCompletionTarget {
    readonly options: ForestOptions;
    readonly device: BlockDevice;
    readonly cache: BlockCache;
    readonly trees: Tree[];
    private readonly shares: DeviceShare[];
    readonly checkpoint: ForestCheckpoint;
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
        const buffer_count = forest_buffer_count(options, block, device.free_set.block_count);
        assert(memory_offset + buffer_count * block <= device.memory.length);
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
        const geometry = new CheckpointGeometry(trees, block, device.free_set.block_count,
            options.checkpoint);
        this.checkpoint = new ForestCheckpoint({
            device, trees: this.trees, cluster: trees[0]!.cluster, buffers_offset: offset,
            geometry, tag_base: forest_tree_count_max << tag_bits,
            checkpoint: options.checkpoint,
        });
        offset += geometry.buffer_count * block;
        assert(offset === memory_offset + buffer_count * block);
        device.target_set(this);
    }

    get idle(): boolean {
        if (this.beat_tree !== -1 || !this.checkpoint.idle) return false;
        for (const tree of this.trees) if (!tree.idle) return false;
        return true;
    }

    block_read_complete(tag: number, result: number): void {
        if (tag >>> tag_bits === forest_tree_count_max) {
            assert((tag & tag_mask) >= 1);
            this.checkpoint.block_read_complete((tag & tag_mask) - 1, result);
            if (this.opening && this.checkpoint.idle) this.open_finish();
            return;
        }
        const share = this.shares[tag >>> tag_bits];
        assert(share !== undefined && share.target !== null, 'lsm: a completion of no tree');
        share.target.block_read_complete(tag & tag_mask, result);
        // A read into a shared cache slot landed: a lookup blocked on its set may go on.
        for (const tree of this.trees) tree.lookup_retry();
        this.beat_advance();
    }

    block_write_complete(tag: number, result: number): void {
        if (tag >>> tag_bits === forest_tree_count_max) {
            assert((tag & tag_mask) === 0);
            this.checkpoint.block_write_complete(result);
            return;
        }
        const share = this.shares[tag >>> tag_bits];
        assert(share !== undefined && share.target !== null, 'lsm: a completion of no tree');
        share.target.block_write_complete(tag & tag_mask, result);
        this.beat_advance();
    }

    /**
     * Writes a checkpoint of the forest (at a bar's end); when `idle` again, `root_reference`
     * names it. The caller makes it durable (the superblock), then calls `checkpoint_durable`.
     */
    checkpoint_start(): void {
        assert(this.idle && !this.opening && this.checkpoint.refusal === null);
        assert(this.beat % this.bar_beat_count === 0, 'lsm: a checkpoint at a bar\'s end only');
        this.checkpoint.start(this.beat);
    }

    /** The superblock names the checkpoint: the blocks only older ones named are freed. */
    checkpoint_durable(): number {
        assert(this.idle && this.checkpoint.written);
        return this.checkpoint.durable();
    }

    /** The root of the last checkpoint written or opened (32 bytes: checksum, address, size). */
    get root_reference(): Uint8Array {
        return this.checkpoint.root_reference;
    }

    private opening = false;

    /** Restores a fresh forest from a checkpoint's root; ends when `idle`. */
    open(reference: Uint8Array, reference_offset: number): void {
        assert(this.idle && this.beat === 0 && !this.opening);
        this.opening = true;
        this.checkpoint.open(reference, reference_offset);
        if (this.checkpoint.idle) this.open_finish();
    }

    /** Why the open failed (a block of the checkpoint refused), or null. */
    get open_refusal(): BlockRefusal | null {
        return this.checkpoint.refusal;
    }

    private open_finish(): void {
        assert(this.opening && this.checkpoint.idle);
        this.opening = false;
        // A refused open leaves the forest unusable: it is never beaten nor checkpointed.
        if (this.checkpoint.refusal !== null) return;
        this.beat = this.checkpoint.beat;
        assert(this.beat % this.bar_beat_count === 0);
        for (const tree of this.trees) tree.beat = this.beat;
    }

    /** Runs one beat of every tree's compaction (call once per op); ends when `idle`. */
    compact_beat(): void {
        assert(this.idle && !this.checkpoint.written, 'lsm: a forest beat while an operation runs');
        assert(this.checkpoint.refusal === null, 'lsm: a beat of a forest that did not open');
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
