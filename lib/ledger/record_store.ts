// The object store behind the ledger: fixed-size 128-byte records addressed by slot, with an id
// index and a timestamp order. Slots are assigned in timestamp order (the ledger only appends
// objects with increasing timestamps), so "get by timestamp" and ordered range scans are binary
// searches over the slots.
//
// The ledger reads and writes records in place through `words` (32 u32 words per record). This
// in-memory store keeps every record resident. A disk-backed store would implement the same
// interface by keeping a resident window: `prefetch` (the only step that may wait) makes every
// record a batch can touch resident, and `execute` then runs without I/O.
import assert from 'node:assert/strict';
import { IdTable } from './id_table';
import { record_size, record_words } from './constants';

const w_timestamp_lo = 30, w_timestamp_hi = 31;

export interface RecordStore {
    readonly max: number;
    readonly count: number;
    /** The record memory: record `slot` is words[slot * 32 .. slot * 32 + 32). */
    readonly words: Uint32Array;
    readonly bytes: Uint8Array;
    /** Slot of the record whose id is key[offset..offset+4], or a negative number. */
    find(key: Uint32Array, offset: number): number;
    /** First slot whose timestamp is >= (hi, lo); `count` if none. */
    lower_bound(hi: number, lo: number): number;
    /** Appends a record copied from source[offset..offset+32]; returns its slot. */
    append(source: Uint32Array, offset: number): number;
    /** Removes the last record (linked-chain rollback). */
    remove_last(): void;
    /** Updates are in place through `words`; this marks a record dirty for a disk store. */
    update(slot: number): void;
}

export class MemoryRecordStore implements RecordStore {
    readonly bytes: Uint8Array;
    readonly words: Uint32Array;
    readonly index: IdTable;
    count = 0;

    constructor(
        readonly max: number, index_slots_max: number = max,
        secondary_words?: Uint32Array, secondary_stride_words?: number,
    ) {
        assert(max > 0);
        this.bytes = new Uint8Array(max * record_size);
        this.words = new Uint32Array(this.bytes.buffer);
        this.index = new IdTable(this.words, record_words, index_slots_max, secondary_words,
            secondary_stride_words);
    }

    find(key: Uint32Array, offset: number): number {
        return this.index.find(key, offset);
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
        assert(this.count < this.max);
        const slot = this.count;
        const base = slot * record_words;
        const words = this.words;
        for (let i = 0; i < record_words; i++) words[base + i] = source[offset + i];
        this.count++;
        this.index.insert(slot);
        return slot;
    }

    remove_last(): void {
        assert(this.count > 0);
        const slot = this.count - 1;
        this.index.remove(slot);
        this.words.fill(0, slot * record_words, (slot + 1) * record_words);
        this.count--;
    }

    update(slot: number): void {
        assert(slot < this.count);
    }

    reset(): void {
        this.bytes.fill(0);
        this.index.clear();
        this.count = 0;
    }
}
