// How the LSM layer reaches its blocks: the BlockDevice interface, with an in-memory device for
// tests and a device over the replica's Storage (the grid zone of the data file).
//
// Like Storage, requests carry no closure: the owner registers a target once and tags each
// request with a small integer. Requests are queued and handed to the disk together by
// `submit()`; completions are delivered later by `tick()`, never inside `read` or `write`, so a
// caller issues a whole batch of reads and then takes one completion pass. Reads and writes name
// a byte offset in `memory` (the arena's bytes for the storage device), where the block lands or
// is taken from. Addresses come from a FreeSet: acquisition is deterministic (lowest free). A
// released block stays acquired until the checkpoint that stops naming it is durable.
import assert from 'node:assert/strict';

import { FreeSet } from '../vsr/grid';
import type { Storage, StorageCompletionTarget } from '../storage/storage';
import { Zone } from '../storage/zones';
import { Prng } from '../prng';

export interface BlockCompletionTarget {
    /** `result` is the byte count read or written (the block's size), or -errno. */
    block_read_complete(tag: number, result: number): void;
    block_write_complete(tag: number, result: number): void;
}

export interface BlockDevice {
    readonly block_size_bytes: number;
    readonly memory: Uint8Array;
    readonly in_flight: number;
    /** Which blocks are acquired: a forest's checkpoint persists it and its open restores it. */
    readonly free_set: FreeSet;
    /** Released, and still acquired until the next checkpoint is durable. */
    is_releasing(address: number): boolean;
    /** Startup only. */
    target_set(target: BlockCompletionTarget): void;
    /** The lowest free address, acquired; 0 when the grid is full. */
    acquire(): number;
    /**
     * The block is no longer named by the live state, but the last durable checkpoint may name
     * it: it stays acquired (unreadable as free, never reused) until `checkpoint_durable()`.
     */
    release(address: number): void;
    /** A checkpoint is being written: the blocks released so far are freed when it is durable. */
    checkpoint_start(): void;
    /** The checkpoint started last is durable: frees what it stopped naming. Returns the count. */
    checkpoint_durable(): number;
    read(tag: number, address: number, memory_offset: number, size_bytes: number): void;
    write(tag: number, address: number, memory_offset: number, size_bytes: number): void;
    /** Hands every queued request to the disk at once. */
    submit(): void;
    /** Delivers due completions; returns how many. */
    tick(): number;
}

const kind_read = 1;
const kind_write = 2;

/**
 * What every device shares: the free set of block addresses and the one owner its completions
 * go to. Subclasses move the bytes.
 */
abstract class BlockDeviceBase {
    readonly free_set: FreeSet;
    protected target: BlockCompletionTarget | null = null;
    /**
     * Released blocks, in release order, still acquired: a crash restarts from the last durable
     * checkpoint, which may name them, so their bytes must survive until the next one is durable.
     * A flag per address catches a double release.
     */
    private readonly releasing: Uint32Array;
    private readonly releasing_flags: Uint8Array;
    releasing_count = 0;
    /** How many of `releasing` the checkpoint being written covers; -1: none is being written. */
    private releasing_checkpoint = -1;

    protected constructor(block_count: number) {
        assert(block_count >= 1);
        this.free_set = new FreeSet(block_count);
        this.releasing = new Uint32Array(block_count);
        this.releasing_flags = new Uint8Array(block_count + 1);
    }

    target_set(target: BlockCompletionTarget): void {
        assert(this.target === null, 'lsm: the device has one owner');
        this.target = target;
    }

    acquire(): number {
        const address = this.free_set.acquire();
        assert(address === 0 || this.free_set.is_acquired(address));
        return address;
    }

    release(address: number): void {
        assert(this.free_set.is_acquired(address), 'lsm: releasing a free block');
        assert.equal(this.releasing_flags[address], 0, 'lsm: a block released twice');
        assert(this.releasing_count < this.releasing.length);
        this.releasing[this.releasing_count] = address;
        this.releasing_flags[address] = 1;
        this.releasing_count += 1;
    }

    /** Whether the block was released and waits for a durable checkpoint (tests, audits). */
    is_releasing(address: number): boolean {
        assert(address >= 1 && address <= this.free_set.block_count);
        return this.releasing_flags[address] === 1;
    }

    checkpoint_start(): void {
        assert(this.releasing_checkpoint === -1, 'lsm: a checkpoint is already being written');
        this.releasing_checkpoint = this.releasing_count;
    }

    checkpoint_durable(): number {
        const count = this.releasing_checkpoint;
        assert(count >= 0 && count <= this.releasing_count, 'lsm: no checkpoint was started');
        for (let index = 0; index < count; index++) {
            const address = this.releasing[index]!;
            assert.equal(this.releasing_flags[address], 1);
            this.releasing_flags[address] = 0;
            this.free_set.release(address);
        }
        // Blocks released after the checkpoint started wait for the next one.
        this.releasing.copyWithin(0, count, this.releasing_count);
        this.releasing_count -= count;
        this.releasing_checkpoint = -1;
        // Allocation restarts from the lowest address, as it does after a restart from this
        // checkpoint: a replica that restarted and one that did not acquire the same addresses.
        this.free_set.cursor_reset();
        return count;
    }
}

/**
 * A grid in memory. Completions of one submission are delivered in a seeded shuffled order, so
 * tests catch a caller that depends on completion order within a batch.
 */
export class MemoryBlockDevice extends BlockDeviceBase implements BlockDevice {
    readonly block_size_bytes: number;
    readonly memory: Uint8Array;
    /** The medium: block `address` is at (address - 1) * block_size_bytes. */
    readonly disk: Uint8Array;
    private readonly prng: Prng;
    private readonly op_kind: Uint8Array;
    private readonly op_tag: Int32Array;
    private readonly op_address: Uint32Array;
    private readonly op_offset: Float64Array;
    private readonly op_size: Uint32Array;
    /** The completions of the submission being delivered (callbacks may queue new requests). */
    private readonly done_kind: Uint8Array;
    private readonly done_tag: Int32Array;
    private readonly done_size: Uint32Array;
    private queued = 0;
    private submitted = 0;
    reads = 0;
    writes = 0;

    constructor(memory: Uint8Array, block_count: number, block_size_bytes: number,
        operations_max: number, seed: number) {
        super(block_count);
        assert(block_count >= 1 && block_size_bytes % 512 === 0);
        assert(operations_max >= 1 && Number.isInteger(seed));
        this.block_size_bytes = block_size_bytes;
        this.memory = memory;
        this.disk = new Uint8Array(block_count * block_size_bytes);
        this.prng = new Prng(seed);
        this.op_kind = new Uint8Array(operations_max);
        this.op_tag = new Int32Array(operations_max);
        this.op_address = new Uint32Array(operations_max);
        this.op_offset = new Float64Array(operations_max);
        this.op_size = new Uint32Array(operations_max);
        this.done_kind = new Uint8Array(operations_max);
        this.done_tag = new Int32Array(operations_max);
        this.done_size = new Uint32Array(operations_max);
    }

    get in_flight(): number {
        assert(this.submitted <= this.queued);
        return this.queued;
    }

    read(tag: number, address: number, memory_offset: number, size_bytes: number): void {
        assert(this.free_set.is_acquired(address), 'lsm: a read of a free block');
        this.enqueue(kind_read, tag, address, memory_offset, size_bytes);
    }

    write(tag: number, address: number, memory_offset: number, size_bytes: number): void {
        assert(this.free_set.is_acquired(address), 'lsm: a write to a free block');
        this.enqueue(kind_write, tag, address, memory_offset, size_bytes);
    }

    private enqueue(kind: number, tag: number, address: number, memory_offset: number,
        size_bytes: number): void {
        assert(this.queued < this.op_kind.length, 'lsm: too many block requests in flight');
        assert(address >= 1 && address <= this.free_set.block_count);
        assert(size_bytes >= 1 && size_bytes <= this.block_size_bytes);
        assert(memory_offset >= 0 && memory_offset + size_bytes <= this.memory.length);
        const index = this.queued;
        this.op_kind[index] = kind;
        this.op_tag[index] = tag;
        this.op_address[index] = address;
        this.op_offset[index] = memory_offset;
        this.op_size[index] = size_bytes;
        this.queued += 1;
    }

    submit(): void {
        assert(this.submitted <= this.queued);
        this.submitted = this.queued;
    }

    tick(): number {
        const count = this.submitted;
        if (count === 0) return 0;
        assert(this.target !== null && count <= this.queued);
        // Fisher-Yates over the submitted prefix: the completion order within a batch is random.
        for (let index = count - 1; index > 0; index--) this.swap(index, this.prng.int(index + 1));
        for (let index = 0; index < count; index++) this.perform(index);
        this.done_kind.set(this.op_kind.subarray(0, count));
        this.done_tag.set(this.op_tag.subarray(0, count));
        this.done_size.set(this.op_size.subarray(0, count));
        // Requests queued by the callbacks below go after the ones not yet submitted.
        this.op_kind.copyWithin(0, count, this.queued);
        this.op_tag.copyWithin(0, count, this.queued);
        this.op_address.copyWithin(0, count, this.queued);
        this.op_offset.copyWithin(0, count, this.queued);
        this.op_size.copyWithin(0, count, this.queued);
        this.queued -= count;
        this.submitted = 0;
        const target = this.target;
        for (let index = 0; index < count; index++) {
            if (this.done_kind[index] === kind_read) {
                target.block_read_complete(this.done_tag[index]!, this.done_size[index]!);
            } else {
                target.block_write_complete(this.done_tag[index]!, this.done_size[index]!);
            }
        }
        return count;
    }

    private swap(a: number, b: number): void {
        assert(a >= 0 && b >= 0 && a < this.submitted && b < this.submitted);
        swap_in(this.op_kind, a, b);
        swap_in(this.op_tag, a, b);
        swap_in(this.op_address, a, b);
        swap_in(this.op_offset, a, b);
        swap_in(this.op_size, a, b);
    }

    private perform(index: number): void {
        const at = (this.op_address[index]! - 1) * this.block_size_bytes;
        const offset = this.op_offset[index]!;
        const size = this.op_size[index]!;
        assert(this.op_kind[index] === kind_read || this.op_kind[index] === kind_write);
        if (this.op_kind[index] === kind_read) {
            this.memory.set(this.disk.subarray(at, at + size), offset);
            this.reads += 1;
        } else {
            this.disk.set(this.memory.subarray(offset, offset + size), at);
            this.writes += 1;
        }
    }
}

/**
 * The grid zone of a Storage (the data file, or the fault-injecting simulator). Blocks are read
 * and written whole at (address - 1) * block_size_bytes in the zone, from and into the arena.
 */
export class StorageBlockDevice extends BlockDeviceBase
    implements BlockDevice, StorageCompletionTarget {
    readonly block_size_bytes: number;
    readonly memory: Uint8Array;
    private readonly storage: Storage;
    private readonly storage_target: number;
    /** Per request slot: kind (0: free) and the owner's tag; a stack of free slots. */
    private readonly op_kind: Uint8Array;
    private readonly op_tag: Int32Array;
    private readonly free_slots: Int32Array;
    private free_count: number;
    in_flight = 0;

    constructor(storage: Storage, operations_max: number) {
        super(storage.layout.config.grid_block_count);
        const block_size_bytes = storage.layout.config.block_size;
        const block_count = storage.layout.config.grid_block_count;
        assert(operations_max >= 1 && block_count >= 1);
        assert(storage.layout.sizes[Zone.grid] === block_count * block_size_bytes);
        this.block_size_bytes = block_size_bytes;
        this.memory = storage.arena.bytes;
        this.storage = storage;
        this.storage_target = storage.target_register(this);
        this.op_kind = new Uint8Array(operations_max);
        this.op_tag = new Int32Array(operations_max);
        this.free_slots = new Int32Array(operations_max);
        for (let slot = 0; slot < operations_max; slot++) {
            this.free_slots[slot] = operations_max - 1 - slot;
        }
        this.free_count = operations_max;
    }

    read(tag: number, address: number, memory_offset: number, size_bytes: number): void {
        assert(this.free_set.is_acquired(address), 'lsm: a read of a free block');
        const slot = this.slot_take(kind_read, tag, address, size_bytes);
        this.storage.read(this.storage_target, slot, Zone.grid,
            (address - 1) * this.block_size_bytes, memory_offset, size_bytes);
    }

    write(tag: number, address: number, memory_offset: number, size_bytes: number): void {
        assert(this.free_set.is_acquired(address), 'lsm: a write to a free block');
        const slot = this.slot_take(kind_write, tag, address, size_bytes);
        this.storage.write(this.storage_target, slot, Zone.grid,
            (address - 1) * this.block_size_bytes, memory_offset, size_bytes);
    }

    private slot_take(kind: number, tag: number, address: number, size_bytes: number): number {
        assert(this.free_count > 0, 'lsm: too many block requests in flight');
        assert(address >= 1 && address <= this.free_set.block_count);
        assert(size_bytes >= 1 && size_bytes <= this.block_size_bytes);
        this.free_count -= 1;
        const slot = this.free_slots[this.free_count]!;
        assert(this.op_kind[slot] === 0);
        this.op_kind[slot] = kind;
        this.op_tag[slot] = tag;
        this.in_flight += 1;
        return slot;
    }

    /** Storage submits what was queued at its next tick: one submission for the whole batch. */
    submit(): void {
        assert(this.in_flight >= 0);
    }

    tick(): number {
        assert(this.target !== null);
        return this.storage.tick();
    }

    storage_complete(slot: number, result: number): void {
        const kind = this.op_kind[slot]!;
        const tag = this.op_tag[slot]!;
        assert(kind === kind_read || kind === kind_write, 'lsm: completion of no request');
        assert(this.target !== null);
        this.op_kind[slot] = 0;
        this.free_slots[this.free_count] = slot;
        this.free_count += 1;
        this.in_flight -= 1;
        if (kind === kind_read) this.target.block_read_complete(tag, result);
        else this.target.block_write_complete(tag, result);
    }
}

function swap_in(array: Uint8Array | Int32Array | Uint32Array | Float64Array, a: number,
    b: number): void {
    assert(a < array.length && b < array.length);
    const value = array[a]!;
    array[a] = array[b]!;
    array[b] = value;
}
