// The block cache: a fixed number of block-sized slots in one preallocated buffer, found by block
// address through a set-associative map (TigerBeetle's set_associative_cache is the model).
// An address hashes to one set of `ways` slots; a lookup compares at most `ways` addresses, and
// eviction runs CLOCK within the set: each slot has a 2-bit use count, raised by a hit and
// lowered as the set's hand passes, and the first slot found at zero is the victim. Memory is
// fixed at construction from a size in bytes and never grows: a full cache evicts.
//
// A slot is empty, reading (a read into it is in flight: it can be neither used nor evicted) or
// ready (it holds a block that verified against its reference). Only ready blocks are returned.
import assert from 'node:assert/strict';

export const cache_ways = 16;
const count_max = 3;

const state_empty = 0;
const state_reading = 1;
const state_ready = 2;

export class BlockCache {
    readonly block_size_bytes: number;
    readonly slot_count: number;
    readonly set_count: number;
    /** The buffer that holds every slot, and where slot 0 starts in it. */
    readonly memory: Uint8Array;
    readonly memory_offset: number;
    /** Per slot: the block address held (0: none), state and CLOCK use count. */
    private readonly addresses: Uint32Array;
    private readonly states: Uint8Array;
    private readonly counts: Uint8Array;
    /** Per set: the CLOCK hand, a way index. */
    private readonly hands: Uint8Array;
    private readonly set_shift: number;
    hits = 0;
    misses = 0;
    evictions = 0;
    /** Slots a read is in flight into (a full set of them makes `reserve` answer -1). */
    reading_count = 0;

    /** Slots for `size_bytes` rounded down to whole sets, the set count a power of two. */
    static slot_count_for(size_bytes: number, block_size_bytes: number): number {
        assert(Number.isSafeInteger(size_bytes) && block_size_bytes > 0);
        const sets = Math.floor(size_bytes / block_size_bytes / cache_ways);
        assert(sets >= 1, 'lsm: the block cache must hold at least one set of 16 blocks');
        const set_count = 2 ** Math.floor(Math.log2(sets));
        assert(set_count <= sets && set_count * 2 > sets);
        return set_count * cache_ways;
    }

    constructor(memory: Uint8Array, memory_offset: number, slot_count: number,
        block_size_bytes: number) {
        assert(slot_count % cache_ways === 0 && slot_count >= cache_ways);
        const set_count = slot_count / cache_ways;
        assert((set_count & (set_count - 1)) === 0, 'lsm: the set count is a power of two');
        assert(memory_offset + slot_count * block_size_bytes <= memory.length);
        assert(memory_offset % 4 === 0 && block_size_bytes % 4 === 0);
        this.block_size_bytes = block_size_bytes;
        this.slot_count = slot_count;
        this.set_count = set_count;
        this.memory = memory;
        this.memory_offset = memory_offset;
        this.addresses = new Uint32Array(slot_count);
        this.states = new Uint8Array(slot_count);
        this.counts = new Uint8Array(slot_count);
        this.hands = new Uint8Array(set_count);
        this.set_shift = 32 - Math.log2(set_count);
    }

    /** The first slot of the set that `address` maps to (a multiplicative hash: spreads runs). */
    private set_first_slot(address: number): number {
        if (this.set_count === 1) return 0;
        return (Math.imul(address, 0x9e3779b1) >>> this.set_shift) * cache_ways;
    }

    private find(address: number): number {
        const first = this.set_first_slot(address);
        if (first + cache_ways > this.slot_count) assert.fail('lsm: a set past the cache end');
        for (let way = 0; way < cache_ways; way++) {
            if (this.addresses[first + way] === address) return first + way;
        }
        return -1;
    }

    slot_offset(slot: number): number {
        assert(slot >= 0 && slot < this.slot_count);
        assert(this.states[slot] !== state_empty, 'lsm: the offset of an empty slot');
        return this.memory_offset + slot * this.block_size_bytes;
    }

    /** The ready slot holding `address`, or -1; a hit raises the slot's use count. */
    lookup(address: number): number {
        assert(address >= 1);
        const slot = this.find(address);
        if (slot === -1 || this.states[slot] !== state_ready) {
            this.misses += 1;
            return -1;
        }
        this.hits += 1;
        if (this.counts[slot]! < count_max) this.counts[slot]! += 1;
        return slot;
    }

    /** Like lookup, without counting a use (compaction reads a block once: it must not heat it). */
    peek(address: number): number {
        assert(address >= 1);
        const slot = this.find(address);
        return slot !== -1 && this.states[slot] === state_ready ? slot : -1;
    }

    /** Whether a read into a slot for `address` is in flight. */
    reading(address: number): boolean {
        assert(address >= 1);
        const slot = this.find(address);
        return slot !== -1 && this.states[slot] === state_reading;
    }

    /**
     * Takes a slot for `address` (not cached) to read into, evicting by CLOCK; -1 when every way
     * of its set is being read into (the caller retries after those reads complete).
     */
    reserve(address: number): number {
        assert(address >= 1 && this.find(address) === -1);
        const first = this.set_first_slot(address);
        // Each full turn lowers every count by one, so a victim is found within count_max + 1
        // turns unless every way is reading.
        for (let step = 0; step < cache_ways * (count_max + 2); step++) {
            const way = this.hands[first / cache_ways]!;
            const slot = first + way;
            this.hands[first / cache_ways] = (way + 1) % cache_ways;
            if (this.states[slot] === state_reading) continue;
            if (this.states[slot] === state_ready && this.counts[slot]! > 0) {
                this.counts[slot]! -= 1;
                continue;
            }
            if (this.states[slot] === state_ready) this.evictions += 1;
            this.addresses[slot] = address;
            this.states[slot] = state_reading;
            this.counts[slot] = 0;
            this.reading_count += 1;
            return slot;
        }
        return -1;
    }

    /** The read into `slot` completed and its block verified. */
    fill_complete(slot: number): void {
        assert(this.states[slot] === state_reading && this.addresses[slot]! >= 1);
        this.states[slot] = state_ready;
        this.counts[slot] = 1;
        this.reading_count -= 1;
        assert(this.reading_count >= 0);
    }

    /** The read into `slot` failed or was refused: the slot holds nothing. */
    fill_abandon(slot: number): void {
        assert(this.states[slot] === state_reading && this.addresses[slot]! >= 1);
        this.addresses[slot] = 0;
        this.states[slot] = state_empty;
        this.counts[slot] = 0;
        this.reading_count -= 1;
        assert(this.reading_count >= 0);
    }

    /** A block's address was released: a later block at that address must not hit this one. */
    remove(address: number): void {
        const slot = this.find(address);
        if (slot === -1) return;
        assert(this.states[slot] === state_ready, 'lsm: a block released while read');
        this.addresses[slot] = 0;
        assert(this.find(address) === -1);
        this.states[slot] = state_empty;
        this.counts[slot] = 0;
    }

    /** How many slots hold a ready block (tests: never more than slot_count). */
    ready_count(): number {
        let count = 0;
        for (let slot = 0; slot < this.slot_count; slot++) {
            if (this.states[slot] === state_ready) count += 1;
        }
        assert(count <= this.slot_count);
        return count;
    }
}
