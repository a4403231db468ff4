// MessagePool: a fixed number of message buffers carved from the engine's arena at startup, each
// with a reference count. Nothing is allocated after construction: `acquire` hands out a free
// index or -1 when the pool is exhausted, and the caller applies backpressure (stops receiving)
// rather than allocating. A message is shared by reference (the same reply queued to many peers)
// and returns to the free list when its last reference is dropped.
import assert from 'node:assert/strict';

import { message_size_max as message_size_max_production, sector_size } from '../constants';
import type { Arena } from '../io/arena';

/** Told once per message that returns to the free list (e.g. to resume a paused receiver). */
export interface MessagePoolListener {
    message_available(): void;
}

export class MessagePool {
    readonly arena: Arena;
    readonly count: number;
    readonly message_size_max: number;
    /** The whole arena; a message's bytes are bytes[offset(index), offset(index) + size_max). */
    readonly bytes: Uint8Array;
    /** Per message: a view of its buffer alone, made once at startup. */
    readonly buffers: readonly Uint8Array[];

    private readonly base_offset: number;
    private readonly references: Uint32Array;
    private readonly free_list: Int32Array;
    private free_count: number;
    private used_high_water = 0;
    private listener: MessagePoolListener | null = null;

    constructor(arena: Arena, count: number, message_size_max = message_size_max_production) {
        assert(Number.isInteger(count) && count > 0);
        assert(Number.isInteger(message_size_max) && message_size_max >= 256);
        assert(message_size_max % 256 === 0, 'message_size_max must be a multiple of 256');
        this.arena = arena;
        this.count = count;
        this.message_size_max = message_size_max;
        this.bytes = arena.bytes;
        // Sector alignment lets a message be written to disk with O_DIRECT without a copy.
        const stride = message_size_stride(message_size_max);
        this.base_offset = arena.allocate(stride * count, sector_size);
        assert(this.base_offset % sector_size === 0 && stride % sector_size === 0);
        const buffers: Uint8Array[] = [];
        for (let index = 0; index < count; index++) {
            const offset = this.base_offset + index * stride;
            buffers.push(arena.bytes.subarray(offset, offset + message_size_max));
        }
        this.buffers = buffers;
        this.references = new Uint32Array(count);
        this.free_list = new Int32Array(count);
        // Lowest indices are handed out first, which keeps tests and traces readable.
        for (let index = 0; index < count; index++) this.free_list[index] = count - 1 - index;
        this.free_count = count;
    }

    /** Startup only: one listener, told when a message is freed. */
    listener_set(listener: MessagePoolListener): void {
        assert(this.listener === null, 'message pool: one listener only');
        this.listener = listener;
    }

    /** Arena offset of the first byte of message `index`. */
    offset(index: number): number {
        assert(index >= 0 && index < this.count);
        return this.base_offset + index * message_size_stride(this.message_size_max);
    }

    /** A free message with one reference, or -1 when the pool is exhausted. */
    acquire(): number {
        if (this.free_count === 0) return -1;
        this.free_count -= 1;
        const index = this.free_list[this.free_count]!;
        assert(index >= 0 && index < this.count);
        assert(this.references[index] === 0, 'message pool: free message has references');
        this.references[index] = 1;
        const used = this.count - this.free_count;
        if (used > this.used_high_water) this.used_high_water = used;
        return index;
    }

    ref(index: number): void {
        assert(index >= 0 && index < this.count);
        assert(this.references[index]! > 0, 'message pool: ref of a free message');
        this.references[index] = this.references[index]! + 1;
    }

    /** Drops one reference; the message is free again when none remain. */
    unref(index: number): void {
        assert(index >= 0 && index < this.count);
        assert(this.references[index]! > 0, 'message pool: double free (unref of a free message)');
        this.references[index] = this.references[index]! - 1;
        if (this.references[index] !== 0) return;
        assert(this.free_count < this.count);
        this.free_list[this.free_count] = index;
        this.free_count += 1;
        if (this.listener !== null) this.listener.message_available();
    }

    references_of(index: number): number {
        assert(index >= 0 && index < this.count);
        return this.references[index]!;
    }

    get free(): number {
        return this.free_count;
    }

    get used(): number {
        return this.count - this.free_count;
    }

    /** The most messages ever in use at once. */
    get used_max(): number {
        return this.used_high_water;
    }

    /** Asserts that every message is back in the pool (end of a test or of a shutdown). */
    assert_no_leaks(): void {
        assert.equal(this.free_count, this.count,
            `message pool: ${this.count - this.free_count} message(s) leaked`);
        for (let index = 0; index < this.count; index++) assert.equal(this.references[index], 0);
    }
}

/** Distance between consecutive buffers: the size rounded up to whole sectors. */
function message_size_stride(message_size_max: number): number {
    return Math.ceil(message_size_max / sector_size) * sector_size;
}
