// The arena: one aligned region of memory, allocated once at startup, that every buffer the kernel
// reads or writes lives in. It is a SharedArrayBuffer so worker threads can see it, over-allocated
// by one alignment unit because V8 does not page-align SharedArrayBuffers. Slices are carved out by
// a bump allocator that works only until `seal()`; asking for memory after that is a programmer
// error.
import assert from 'node:assert/strict';

import { binding } from './binding';

import { sector_size } from '../constants';

export { sector_size };

export class Arena {
    /** The whole SharedArrayBuffer, including the alignment slack before `base_offset`. */
    readonly shared_buffer: SharedArrayBuffer;
    /** The aligned region: its byte 0 is 4096-aligned in memory. Arena offsets index it. */
    readonly bytes: Uint8Array;
    readonly size_bytes: number;
    /** Where the aligned region starts inside `shared_buffer`. */
    readonly base_offset: number;

    private allocated_bytes = 0;
    private sealed = false;

    constructor(size_bytes: number) {
        assert(Number.isSafeInteger(size_bytes));
        assert(size_bytes > 0);
        assert(size_bytes % sector_size === 0, 'arena size must be a multiple of 4096');
        this.shared_buffer = new SharedArrayBuffer(size_bytes + sector_size);
        const whole = new Uint8Array(this.shared_buffer);
        this.base_offset = binding().arena_alignment_offset(whole, sector_size);
        assert(this.base_offset >= 0 && this.base_offset < sector_size);
        this.bytes = new Uint8Array(this.shared_buffer, this.base_offset, size_bytes);
        this.size_bytes = size_bytes;
    }

    /** Reserves `size_bytes` aligned to `alignment` and returns its arena offset. Startup only. */
    allocate(size_bytes: number, alignment: number = sector_size): number {
        assert(!this.sealed, 'arena: allocation after seal() (allocate everything at startup)');
        assert(Number.isSafeInteger(size_bytes) && size_bytes > 0);
        assert(alignment > 0 && (alignment & (alignment - 1)) === 0);
        const offset = Math.ceil(this.allocated_bytes / alignment) * alignment;
        if (offset + size_bytes > this.size_bytes) {
            throw new Error(
                `arena: out of memory at startup: need ${size_bytes} bytes at offset ${offset}, ` +
                    `arena is ${this.size_bytes} bytes; configure a larger arena`,
            );
        }
        this.allocated_bytes = offset + size_bytes;
        assert(offset % alignment === 0);
        return offset;
    }

    /**
     * The simulator's restart of a process whose I/O all died with it (a crash): the region it
     * carved from `used_bytes` on is zeroed and handed out again, as a new process would get
     * fresh memory. Before seal only.
     */
    rewind(used_bytes: number): void {
        assert(!this.sealed, 'arena: rewind after seal()');
        assert(Number.isSafeInteger(used_bytes) && used_bytes >= 0);
        assert(used_bytes <= this.allocated_bytes, 'arena: rewind beyond what was allocated');
        this.bytes.fill(0, used_bytes, this.allocated_bytes);
        this.allocated_bytes = used_bytes;
    }

    /** Ends the startup phase: no allocation is possible afterwards. */
    seal(): void {
        this.sealed = true;
    }

    get is_sealed(): boolean {
        return this.sealed;
    }

    get used_bytes(): number {
        return this.allocated_bytes;
    }
}
