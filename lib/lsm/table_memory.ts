// The in-memory tables of a tree: the mutable table takes a bar's puts and removes; at the end of
// the bar it becomes the immutable table (the two swap roles, nothing is copied), which is sorted
// once and then merged into level 0 during the next bar while the new mutable table fills.
//
// Entries live in preallocated typed arrays (keys, values, a tombstone byte per entry) sized at
// construction. A key appears at most once: a second put or a remove of the same key overwrites
// its entry in place, found through an open-addressing hash of the key (linear probing, at least
// twice as many slots as entries, so a probe sequence stays short and always ends).
import assert from 'node:assert/strict';

import { key_compare, key_copy } from './key';

export class MemoryTable {
    readonly key_words: number;
    readonly value_words: number;
    readonly entry_count_max: number;
    readonly keys: Uint32Array;
    readonly values: Uint32Array;
    readonly tombstones: Uint8Array;
    /** After `sort`: entry indices in key order (the first `count`). */
    readonly order: Uint32Array;
    count = 0;
    /** The immutable table: sorted once, no more puts. */
    sorted = false;
    /** Whether `order` is the key order of the current entries (a put makes it stale). */
    order_fresh = true;
    /** Hash slots hold an entry index + 1 (0: empty). */
    private readonly hash_slots: Uint32Array;
    private readonly hash_mask: number;
    /** Bound once: the comparator that sorts `order` by key. */
    private readonly order_compare: (a: number, b: number) => number;

    constructor(key_words: number, value_words: number, entry_count_max: number) {
        assert(key_words >= 1 && value_words >= 0);
        assert(Number.isInteger(entry_count_max) && entry_count_max >= 1);
        this.key_words = key_words;
        this.value_words = value_words;
        this.entry_count_max = entry_count_max;
        this.keys = new Uint32Array(entry_count_max * key_words);
        this.values = new Uint32Array(entry_count_max * value_words);
        this.tombstones = new Uint8Array(entry_count_max);
        this.order = new Uint32Array(entry_count_max);
        const hash_slot_count = 2 ** Math.ceil(Math.log2(entry_count_max * 2));
        assert(hash_slot_count >= entry_count_max * 2);
        this.hash_slots = new Uint32Array(hash_slot_count);
        this.hash_mask = hash_slot_count - 1;
        this.order_compare = (a: number, b: number): number =>
            key_compare(this.keys, a * key_words, this.keys, b * key_words, key_words);
    }

    private hash(key: Uint32Array, key_word: number): number {
        if (key_word + this.key_words > key.length) assert.fail('lsm: key outside its array');
        let hash = 0x811c9dc5;
        for (let word = 0; word < this.key_words; word++) {
            hash = Math.imul(hash ^ key[key_word + word]!, 0x9e3779b1);
            hash ^= hash >>> 15;
        }
        return hash & this.hash_mask;
    }

    /** The entry holding this key, or -1. */
    find(key: Uint32Array, key_word: number): number {
        let slot = this.hash(key, key_word);
        // The table is at most half full: an empty slot ends every probe sequence.
        for (let probe = 0; probe <= this.hash_mask; probe++) {
            const stored = this.hash_slots[slot]!;
            if (stored === 0) return -1;
            const entry = stored - 1;
            if (key_compare(this.keys, entry * this.key_words, key, key_word,
                this.key_words) === 0) {
                return entry;
            }
            slot = (slot + 1) & this.hash_mask;
        }
        assert.fail('lsm: the memory table hash has no empty slot');
    }

    get full(): boolean {
        assert(this.count <= this.entry_count_max);
        return this.count === this.entry_count_max;
    }

    /**
     * Inserts or overwrites the entry for `key`: a value (`tombstone` false) or a removal (the
     * value words are zeroed so that the table's bytes depend only on what was put).
     */
    put(key: Uint32Array, key_word: number, value: Uint32Array, value_word: number,
        tombstone: boolean): void {
        assert(!this.sorted, 'lsm: a put into a sorted (immutable) table');
        let entry = this.find(key, key_word);
        if (entry === -1) {
            assert(this.count < this.entry_count_max, 'lsm: the mutable table is full');
            entry = this.count;
            this.count += 1;
            key_copy(this.keys, entry * this.key_words, key, key_word, this.key_words);
            this.hash_insert(key, key_word, entry);
        }
        const base = entry * this.value_words;
        for (let word = 0; word < this.value_words; word++) {
            this.values[base + word] = tombstone ? 0 : value[value_word + word]!;
        }
        this.tombstones[entry] = tombstone ? 1 : 0;
        this.order_fresh = false;
        assert(this.find(key, key_word) === entry);
    }

    private hash_insert(key: Uint32Array, key_word: number, entry: number): void {
        assert(entry < this.entry_count_max);
        let slot = this.hash(key, key_word);
        for (let probe = 0; probe <= this.hash_mask; probe++) {
            if (this.hash_slots[slot] === 0) {
                this.hash_slots[slot] = entry + 1;
                return;
            }
            slot = (slot + 1) & this.hash_mask;
        }
        assert.fail('lsm: the memory table hash is full');
    }

    /** Makes the table immutable, in key order. */
    sort(): void {
        assert(!this.sorted);
        this.order_build();
        this.sorted = true;
        assert(this.order_fresh);
    }

    /**
     * Orders the entries by key (keys are unique, so the order is fully determined). A scan of
     * the mutable table builds it too: a cost per scan, in exchange for puts that stay O(1).
     */
    order_build(): void {
        if (this.order_fresh) return;
        for (let index = 0; index < this.count; index++) this.order[index] = index;
        this.order.subarray(0, this.count).sort(this.order_compare);
        this.order_fresh = true;
        assert(this.count <= this.entry_count_max);
        for (let index = 1; index < this.count; index++) {
            const previous = this.order[index - 1]! * this.key_words;
            if (key_compare(this.keys, previous, this.keys, this.order[index]! * this.key_words,
                this.key_words) >= 0) assert.fail('lsm: the sorted table is out of order');
        }
    }

    /** The position in `order` of the first entry whose key is >= key (after `sort`). */
    lower_bound(key: Uint32Array, key_word: number): number {
        assert(this.order_fresh);
        let low = 0;
        let high = this.count;
        for (let pass = 0; pass < 33 && low < high; pass++) {
            const middle = (low + high) >>> 1;
            const entry = this.order[middle]!;
            if (key_compare(this.keys, entry * this.key_words, key, key_word,
                this.key_words) < 0) low = middle + 1;
            else high = middle;
        }
        assert(low === high);
        return low;
    }

    /** Empties the table for reuse; zeroes what was used so no old entry can leak out. */
    clear(): void {
        assert(this.count <= this.entry_count_max);
        this.keys.fill(0, 0, this.count * this.key_words);
        this.values.fill(0, 0, this.count * this.value_words);
        this.tombstones.fill(0, 0, this.count);
        this.order.fill(0, 0, this.count);
        this.hash_slots.fill(0);
        this.count = 0;
        this.sorted = false;
        this.order_fresh = true;
    }
}
