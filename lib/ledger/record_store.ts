// The object store behind the ledger: fixed-size 128-byte records addressed by slot, with an id
// index and a timestamp order. Slots are assigned in timestamp order (the ledger only appends
// objects with increasing timestamps), so "get by timestamp" and ordered range scans are binary
// searches over the slots.
//
// The ledger's rules see records only through this interface (get by id, get by timestamp,
// insert, update, timestamp-range scans) plus `words`, the memory in which a record reached
// through a slot is read and written in place (32 u32 words per record).
//
// Prefetch contract. `Ledger.prefetch` runs before `Ledger.execute` and calls `prefetch(id)` for
// every id the batch can touch (at most `prefetch_ids_max`). It is the only step allowed to wait
// for storage: the disk-resident store (groove.ts, not yet behind Ledger) reads the missing records
// into a bounded per-batch area there and pins them, so that the synchronous execute step never
// waits; it implements RecordAccess, the part of this interface that a batch needs. This one has
// every record resident, so its prefetch has nothing to do. (It used to touch each id's hash
// bucket to overlap cache misses; execute now does that itself, 64 events ahead, which measured
// faster: a whole-batch pass evicts what it touched before execute reaches it.) Execute over this
// store never depends on prefetch having run, so a caller that skips it gets the same results.
import assert from 'node:assert/strict';
import { IdTable } from './id_table';
import { batch_events_max, record_size, record_words } from './constants';
import { DirtyChunks } from './state_image';

const w_timestamp_lo = 30, w_timestamp_hi = 31;
// Hot paths test invariants with `if (!x) assert.fail(...)`: V8 does not inline the call behind
// `assert(x)` (node's `innerOk`), which costs a call per check even when it holds.

/**
 * Copies one 32-word record. Unrolled: V8 re-checks both arrays on every iteration of a copy
 * loop, which made the loop cost about 40 instructions per word.
 */
export function copy_record(
    target: Uint32Array, to: number, source: Uint32Array, from: number,
): void {
    target[to] = source[from]; target[to + 1] = source[from + 1];
    target[to + 2] = source[from + 2]; target[to + 3] = source[from + 3];
    target[to + 4] = source[from + 4]; target[to + 5] = source[from + 5];
    target[to + 6] = source[from + 6]; target[to + 7] = source[from + 7];
    target[to + 8] = source[from + 8]; target[to + 9] = source[from + 9];
    target[to + 10] = source[from + 10]; target[to + 11] = source[from + 11];
    target[to + 12] = source[from + 12]; target[to + 13] = source[from + 13];
    target[to + 14] = source[from + 14]; target[to + 15] = source[from + 15];
    target[to + 16] = source[from + 16]; target[to + 17] = source[from + 17];
    target[to + 18] = source[from + 18]; target[to + 19] = source[from + 19];
    target[to + 20] = source[from + 20]; target[to + 21] = source[from + 21];
    target[to + 22] = source[from + 22]; target[to + 23] = source[from + 23];
    target[to + 24] = source[from + 24]; target[to + 25] = source[from + 25];
    target[to + 26] = source[from + 26]; target[to + 27] = source[from + 27];
    target[to + 28] = source[from + 28]; target[to + 29] = source[from + 29];
    target[to + 30] = source[from + 30]; target[to + 31] = source[from + 31];
}

/** Copies `count` words; for short runs, where a subarray and `set` would cost more. */
export function copy_words(
    target: Uint32Array, target_offset: number, source: Uint32Array, source_offset: number,
    count: number,
): void {
    for (let index = 0; index < count; index++) {
        target[target_offset + index] = source[source_offset + index];
    }
}

/** The most ids one batch prefetches: a transfer, its two accounts and its pending transfer. */
export const prefetch_ids_max = batch_events_max * 4;

/**
 * What a batch does with records: the part of the store a disk-resident store (groove.ts)
 * implements too. Slots are valid within one batch there; here they are permanent.
 */
export interface RecordAccess {
    readonly max: number;
    readonly count: number;
    /** The record memory: record `slot` is words[slot * 32 .. slot * 32 + 32). */
    readonly words: Uint32Array;
    readonly bytes: Uint8Array;
    /** Makes the record with id key[offset..offset+4] (if any) ready for the next execute. */
    prefetch(key: Uint32Array, offset: number): number;
    /** Get by id: slot of the record whose id is key[offset..offset+4], or a negative number. */
    find(key: Uint32Array, offset: number): number;
    /**
     * Gets by id for `count` records of `stride_words` words from key[offset]: each one's id at
     * +0 and another at +second_words, into out[2 * record] and out[2 * record + 1] (find's).
     */
    find_pairs(key: Uint32Array, offset: number, stride_words: number, second_words: number,
        count: number, out: Int32Array): void;
    /**
     * Touches what finds of the ids of `count` records from key[offset] will read (a hint, no
     * effect on results); returns a value to fold so the loads are kept.
     */
    warm(key: Uint32Array, offset: number, stride_words: number, count: number): number;
    /** The newest record's timestamp (hi, lo), or (0, 0) when there is none. */
    readonly timestamp_last_hi: number;
    readonly timestamp_last_lo: number;
    /** Insert: appends a record copied from source[offset..offset+32]; returns its slot. */
    append(source: Uint32Array, offset: number): number;
    /**
     * Bulk insert, step one: copies `records` records from source[offset..] into the free slots
     * from `count` on (the staging area), at the cost of one memcpy. A batch's records are
     * staged before the batch runs; then `append_staged` makes one of them the next record.
     */
    stage(source: Uint32Array, offset: number, records: number): void;
    /** Insert: appends the record staged at `staged_slot`; returns its slot. */
    append_staged(staged_slot: number): number;
    /** Zeroes what is left of the staging area: free slots stay zero between batches. */
    unstage(): void;
    /** Removes the last record (linked-chain rollback). */
    remove_last(): void;
    /** Update: changes are made in place through `words`; this marks the record dirty. */
    update(slot: number): void;
    /**
     * The permanent ordinal (creation index, 0 for the first record) of the record at `slot`:
     * what the ledger's per-record side arrays are indexed by. The record an append just made
     * is the newest: its ordinal is `count - 1`.
     */
    ordinal(slot: number): number;
    /**
     * Get by timestamp: a non-negative number when a record has exactly this timestamp (here
     * its slot), else -1. A disk-resident store answers only timestamps its prefetch probed.
     */
    find_timestamp(hi: number, lo: number): number;
}

/** The in-memory store's ordered part: slots in timestamp order double as the index. */
export interface RecordStore extends RecordAccess {
    /** Ordered index scan: first slot whose timestamp is >= (hi, lo); `count` if none. */
    lower_bound(hi: number, lo: number): number;
}

export class MemoryRecordStore implements RecordStore {
    readonly bytes: Uint8Array;
    readonly words: Uint32Array;
    readonly index: IdTable;
    count = 0;
    /**
     * Dirty tracking for incremental checkpoints (lib/ledger/checkpoint.ts, through the
     * `dirty_*` members below): see DirtyChunks in state_image.ts.
     */
    readonly dirty = new DirtyChunks();
    /** The end of the staging area (see `stage`), or 0 when nothing is staged. */
    private staged_end = 0;
    /** Every record is in memory: prefetching has nothing to do (see the contract above). */
    readonly resident = true;

    constructor(
        readonly max: number, index_slots_max: number = max,
        secondary_words?: Uint32Array, secondary_stride_words?: number, grouped_ids = true,
    ) {
        assert(Number.isInteger(max) && max > 0);
        assert(index_slots_max >= max, 'record_store: the index cannot hold every record');
        this.bytes = new Uint8Array(max * record_size);
        this.words = new Uint32Array(this.bytes.buffer);
        assert(record_words === 32);
        this.index = new IdTable(this.words, record_words, index_slots_max, secondary_words,
            secondary_stride_words, grouped_ids);
    }

    prefetch(key: Uint32Array, offset: number): number {
        // Every record is resident: nothing to read (see the contract above).
        return key[offset] & 0;
    }

    find(key: Uint32Array, offset: number): number {
        return this.index.find(key, offset);
    }

    ordinal(slot: number): number {
        if (!(slot >= 0 && slot < this.count)) assert.fail('record_store: ordinal of no record');
        // Slots are handed out in creation order and never move: the slot is the ordinal.
        return slot;
    }

    /**
     * The slot of the record with permanent ordinal `ordinal`: the same number here. Only the
     * ledger's in-memory parts that read a record they hold by ordinal call it (the expiry heap,
     * the per-account lists' walk, change events' replies): each is listed in groove.ts's
     * header as what a disk-resident store does not serve yet.
     */
    slot_of_ordinal(ordinal: number): number {
        if (!(ordinal >= 0 && ordinal < this.count)) assert.fail('record_store: no such ordinal');
        return ordinal;
    }

    find_pairs(key: Uint32Array, offset: number, stride_words: number, second_words: number,
        count: number, out: Int32Array): void {
        this.index.find_pairs(key, offset, stride_words, second_words, count, out);
    }

    warm(key: Uint32Array, offset: number, stride_words: number, count: number): number {
        return this.index.warm(key, offset, stride_words, count);
    }

    get timestamp_last_hi(): number {
        return this.count === 0 ? 0 : this.words[(this.count - 1) * record_words + w_timestamp_hi];
    }

    get timestamp_last_lo(): number {
        return this.count === 0 ? 0 : this.words[(this.count - 1) * record_words + w_timestamp_lo];
    }

    find_timestamp(hi: number, lo: number): number {
        assert((hi | lo) !== 0, 'record_store: no record has timestamp zero');
        const slot = this.lower_bound(hi, lo);
        assert(slot <= this.count);
        if (slot === this.count) return -1;
        const base = slot * record_words;
        const words = this.words;
        return words[base + w_timestamp_hi] === hi && words[base + w_timestamp_lo] === lo ?
            slot : -1;
    }

    lower_bound(hi: number, lo: number): number {
        const words = this.words;
        let low = 0, high = this.count;
        while (low < high) {
            const middle = (low + high) >>> 1;
            const record = middle * record_words;
            const middle_hi = words[record + w_timestamp_hi];
            const middle_lo = words[record + w_timestamp_lo];
            if (hi > middle_hi || (hi === middle_hi && lo > middle_lo)) low = middle + 1;
            else high = middle;
        }
        // Every slot before `low` is earlier than (hi, lo), in slot (timestamp) order.
        assert(low === 0 || timestamp_before(words, (low - 1) * record_words, hi, lo));
        return low;
    }

    append(source: Uint32Array, offset: number): number {
        const slot = this.count;
        if (slot >= this.max) assert.fail('record_store: append beyond max');
        if (this.staged_end !== 0) assert.fail('record_store: append while staged');
        copy_record(this.words, slot * 32, source, offset);
        this.count = slot + 1;
        this.index.insert(slot);
        this.dirty_mark(slot);
        return slot;
    }

    stage(source: Uint32Array, offset: number, records: number): void {
        assert(this.staged_end === 0, 'record_store: staging twice');
        assert(records >= 0 && this.count + records <= this.max);
        assert(offset >= 0 && offset + records * record_words <= source.length);
        // One subarray per batch, not per record: a per-record copy through typed-array
        // element accesses cost V8 about 18 instructions a word (bounds and type checks).
        this.words.set(source.subarray(offset, offset + records * record_words),
            this.count * record_words);
        this.staged_end = this.count + records;
        assert(this.staged_end <= this.max);
    }

    append_staged(staged_slot: number): number {
        const slot = this.count;
        // Slots are handed out in order and a record is appended at most once, so the next
        // slot never lies beyond the staged record: the copy (if any) only overwrites a record
        // that was staged for an event already done.
        if (!(slot <= staged_slot && staged_slot < this.staged_end)) {
            assert.fail('record_store: append_staged outside the staging area');
        }
        if (slot !== staged_slot) {
            this.words.copyWithin(slot * 32, staged_slot * 32, staged_slot * 32 + 32);
        }
        this.count = slot + 1;
        this.index.insert(slot);
        const dirty = this.dirty;
        if (dirty.chunk_records !== 0) dirty.mark(slot);
        return slot;
    }

    unstage(): void {
        assert(this.staged_end === 0 || this.count <= this.staged_end,
            'record_store: appended beyond the staging area');
        if (this.count < this.staged_end) {
            this.words.fill(0, this.count * record_words, this.staged_end * record_words);
        }
        this.staged_end = 0;
    }

    remove_last(): void {
        assert(this.count > 0);
        const slot = this.count - 1;
        const indexed = this.index.count;
        this.index.remove(slot);
        assert.equal(this.index.count, indexed - 1);
        this.words.fill(0, slot * record_words, (slot + 1) * record_words);
        this.count--;
        this.dirty_mark(slot);
    }

    update(slot: number): void {
        if (slot >= this.count) assert.fail('record_store: update of a free slot');
        const dirty = this.dirty;
        if (dirty.chunk_records !== 0) dirty.mark(slot);
    }

    /** Records per dirty chunk (0: tracking off). */
    get dirty_chunk_records(): number {
        return this.dirty.chunk_records;
    }

    get dirty_flags(): Uint8Array {
        return this.dirty.flags;
    }

    /** The dirty chunks, `dirty_count` of them, in the order they were first changed. */
    get dirty_list(): Uint32Array {
        return this.dirty.list;
    }

    get dirty_count(): number {
        return this.dirty.count;
    }

    /** Startup: turns dirty tracking on with chunks of `chunk_records` records. */
    dirty_track(chunk_records: number): void {
        this.dirty.track(chunk_records, this.max);
    }

    dirty_mark(slot: number): void {
        this.dirty.mark(slot);
    }

    dirty_clear(): void {
        this.dirty.clear();
    }

    /** After the records were loaded in place (checkpoint restore): rebuilds the id index. */
    rebuild(count: number): void {
        assert(count >= 0 && count <= this.max);
        this.index.clear();
        this.count = 0;
        for (let slot = 0; slot < count; slot++) {
            this.count++;
            this.index.insert(slot);
        }
        assert.equal(this.index.count, count, 'record_store: ids repeat');
    }

    reset(): void {
        this.bytes.fill(0);
        this.staged_end = 0;
        this.index.clear();
        this.count = 0;
        assert.equal(this.index.count, 0);
    }
}

/** Whether the record at words[record..] has a timestamp before (hi, lo). */
function timestamp_before(words: Uint32Array, record: number, hi: number, lo: number): boolean {
    const record_hi = words[record + w_timestamp_hi], record_lo = words[record + w_timestamp_lo];
    return record_hi < hi || (record_hi === hi && record_lo < lo);
}
