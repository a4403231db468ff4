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
// for storage: a disk-backed store would read the missing records into a bounded per-batch cache
// there and pin them, so that the synchronous execute step never waits. This in-memory store has
// every record resident, so its prefetch has nothing to do. (It used to touch each id's hash
// bucket to overlap cache misses; execute now does that itself, 64 events ahead, which measured
// faster: a whole-batch pass evicts what it touched before execute reaches it.) Execute never
// depends on prefetch having run, so a caller that skips it gets the same results.
import assert from 'node:assert/strict';
import { IdTable } from './id_table';
import { batch_events_max, record_size, record_words } from './constants';

const w_timestamp_lo = 30, w_timestamp_hi = 31;
// Hot paths test invariants with `if (!x) assert.fail(...)`: V8 does not inline the call behind
// `assert(x)` (node's `innerOk`), which costs a call per check even when it holds.

/**
 * Copies one 32-word record. Unrolled: V8 re-checks both arrays on every iteration of a copy
 * loop, which made the loop cost about 40 instructions per word.
 */
export function copy_record(
    target: Uint32Array, t: number, source: Uint32Array, s: number,
): void {
    target[t] = source[s]; target[t + 1] = source[s + 1];
    target[t + 2] = source[s + 2]; target[t + 3] = source[s + 3];
    target[t + 4] = source[s + 4]; target[t + 5] = source[s + 5];
    target[t + 6] = source[s + 6]; target[t + 7] = source[s + 7];
    target[t + 8] = source[s + 8]; target[t + 9] = source[s + 9];
    target[t + 10] = source[s + 10]; target[t + 11] = source[s + 11];
    target[t + 12] = source[s + 12]; target[t + 13] = source[s + 13];
    target[t + 14] = source[s + 14]; target[t + 15] = source[s + 15];
    target[t + 16] = source[s + 16]; target[t + 17] = source[s + 17];
    target[t + 18] = source[s + 18]; target[t + 19] = source[s + 19];
    target[t + 20] = source[s + 20]; target[t + 21] = source[s + 21];
    target[t + 22] = source[s + 22]; target[t + 23] = source[s + 23];
    target[t + 24] = source[s + 24]; target[t + 25] = source[s + 25];
    target[t + 26] = source[s + 26]; target[t + 27] = source[s + 27];
    target[t + 28] = source[s + 28]; target[t + 29] = source[s + 29];
    target[t + 30] = source[s + 30]; target[t + 31] = source[s + 31];
}

/** The most ids one batch prefetches: a transfer, its two accounts and its pending transfer. */
export const prefetch_ids_max = batch_events_max * 4;

export interface RecordStore {
    readonly max: number;
    readonly count: number;
    /** The record memory: record `slot` is words[slot * 32 .. slot * 32 + 32). */
    readonly words: Uint32Array;
    readonly bytes: Uint8Array;
    /** Makes the record with id key[offset..offset+4] (if any) ready for the next execute. */
    prefetch(key: Uint32Array, offset: number): number;
    /** Get by id: slot of the record whose id is key[offset..offset+4], or a negative number. */
    find(key: Uint32Array, offset: number): number;
    /** Get by timestamp: the slot of the record with exactly this timestamp, or -1. */
    find_timestamp(hi: number, lo: number): number;
    /** Ordered index scan: first slot whose timestamp is >= (hi, lo); `count` if none. */
    lower_bound(hi: number, lo: number): number;
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
}

export class MemoryRecordStore implements RecordStore {
    readonly bytes: Uint8Array;
    readonly words: Uint32Array;
    readonly index: IdTable;
    count = 0;
    /**
     * Dirty tracking for incremental checkpoints (lib/storage/checkpoint.ts): the chunks of
     * `dirty_chunk_records` records changed since `dirty_clear`, as flags and as a list, so a
     * checkpoint visits only what changed. Off (chunk size 0) until `dirty_track` is called.
     */
    dirty_chunk_records = 0;
    dirty_flags: Uint8Array = new Uint8Array(0);
    dirty_list: Uint32Array = new Uint32Array(0);
    dirty_count = 0;
    /** The end of the staging area (see `stage`), or 0 when nothing is staged. */
    private staged_end = 0;
    /** Every record is in memory: prefetching has nothing to do (see the contract above). */
    readonly resident = true;

    constructor(
        readonly max: number, index_slots_max: number = max,
        secondary_words?: Uint32Array, secondary_stride_words?: number, grouped_ids = true,
    ) {
        assert(max > 0);
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

    find_timestamp(hi: number, lo: number): number {
        const slot = this.lower_bound(hi, lo);
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
            const m = middle * record_words;
            const m_hi = words[m + w_timestamp_hi], m_lo = words[m + w_timestamp_lo];
            if (hi > m_hi || (hi === m_hi && lo > m_lo)) low = middle + 1; else high = middle;
        }
        return low;
    }

    append(source: Uint32Array, offset: number): number {
        const slot = this.count;
        if (slot >= this.max) assert.fail('record_store: append beyond max');
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
        if (this.dirty_chunk_records !== 0) this.dirty_mark(slot);
        return slot;
    }

    unstage(): void {
        if (this.count < this.staged_end) {
            this.words.fill(0, this.count * record_words, this.staged_end * record_words);
        }
        this.staged_end = 0;
    }

    remove_last(): void {
        assert(this.count > 0);
        const slot = this.count - 1;
        this.index.remove(slot);
        this.words.fill(0, slot * record_words, (slot + 1) * record_words);
        this.count--;
        this.dirty_mark(slot);
    }

    update(slot: number): void {
        if (slot >= this.count) assert.fail('record_store: update of a free slot');
        if (this.dirty_chunk_records !== 0) this.dirty_mark(slot);
    }

    /** Startup: turns dirty tracking on with chunks of `chunk_records` records. */
    dirty_track(chunk_records: number): void {
        assert(Number.isInteger(chunk_records) && chunk_records > 0);
        const chunks = Math.ceil(this.max / chunk_records);
        this.dirty_chunk_records = chunk_records;
        this.dirty_flags = new Uint8Array(chunks);
        this.dirty_list = new Uint32Array(chunks);
        this.dirty_count = 0;
    }

    dirty_mark(slot: number): void {
        if (this.dirty_chunk_records === 0) return;
        const chunk = Math.floor(slot / this.dirty_chunk_records);
        if (this.dirty_flags[chunk] === 1) return;
        this.dirty_flags[chunk] = 1;
        this.dirty_list[this.dirty_count++] = chunk;
    }

    dirty_clear(): void {
        for (let index = 0; index < this.dirty_count; index++) {
            this.dirty_flags[this.dirty_list[index]] = 0;
        }
        this.dirty_count = 0;
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
    }

    reset(): void {
        this.bytes.fill(0);
        this.staged_end = 0;
        this.index.clear();
        this.count = 0;
    }
}
