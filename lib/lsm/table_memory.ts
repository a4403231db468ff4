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

/** The radix sort of `order` takes a key 8 bits at a time, least significant first. */
const radix_digit_bits = 8;
const radix_digit_count = 1 << radix_digit_bits;

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
    /**
     * Hash slots as pairs: an entry index + 1 (0: empty), then the key's full hash, so that a
     * probe past another key compares the hashes, not the keys (no touch of the keys array).
     */
    private readonly hash_slots: Uint32Array;
    private readonly hash_mask: number;
    /** Set by a find that answers -1: the empty slot that ended its probe, and the hash. */
    private probe_empty_slot = -1;
    private probe_hash = 0;
    // The radix sort's second order array, its digit counts and each key word's varying bits.
    private readonly order_scratch: Uint32Array;
    private readonly digit_counts = new Uint32Array(radix_digit_count + 1);
    private readonly word_differences: Uint32Array;

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
        this.hash_slots = new Uint32Array(hash_slot_count * 2);
        this.hash_mask = hash_slot_count - 1;
        this.order_scratch = new Uint32Array(entry_count_max);
        this.word_differences = new Uint32Array(key_words);
    }

    /** The key's 32-bit hash (its low bits pick the slot). */
    private hash(key: Uint32Array, key_word: number): number {
        if (key_word + this.key_words > key.length) assert.fail('lsm: key outside its array');
        let hash = 0x811c9dc5;
        for (let word = 0; word < this.key_words; word++) {
            hash = Math.imul(hash ^ key[key_word + word]!, 0x9e3779b1);
            hash ^= hash >>> 15;
        }
        return hash >>> 0;
    }

    /** The entry holding this key, or -1. */
    find(key: Uint32Array, key_word: number): number {
        const hash = this.hash(key, key_word);
        const slots = this.hash_slots;
        let slot = hash & this.hash_mask;
        // The table is at most half full: an empty slot ends every probe sequence.
        for (let probe = 0; probe <= this.hash_mask; probe++) {
            const stored = slots[slot * 2]!;
            if (stored === 0) {
                this.probe_empty_slot = slot;
                this.probe_hash = hash;
                return -1;
            }
            const entry = stored - 1;
            if (slots[slot * 2 + 1] === hash && key_compare(this.keys, entry * this.key_words,
                key, key_word, this.key_words) === 0) {
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
            // The find that missed ended at this empty slot: the key goes there.
            const slot = this.probe_empty_slot;
            assert(slot >= 0 && this.hash_slots[slot * 2] === 0);
            this.hash_slots[slot * 2] = entry + 1;
            this.hash_slots[slot * 2 + 1] = this.probe_hash;
            this.probe_empty_slot = -1;
        }
        const value_words = this.value_words, values = this.values;
        const base = entry * value_words;
        if (tombstone) {
            values.fill(0, base, base + value_words);
        } else {
            for (let word = 0; word < value_words; word++) {
                values[base + word] = value[value_word + word]!;
            }
        }
        this.tombstones[entry] = tombstone ? 1 : 0;
        this.order_fresh = false;
        assert(key_compare(this.keys, entry * this.key_words, key, key_word,
            this.key_words) === 0);
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
     * An LSD radix sort, stable, a pass per 8-bit digit that varies between keys (a digit every
     * key shares is skipped): no comparator calls, O(count) per pass.
     */
    order_build(): void {
        if (this.order_fresh) return;
        const count = this.count, key_words = this.key_words, keys = this.keys;
        assert(count <= this.entry_count_max);
        for (let index = 0; index < count; index++) this.order[index] = index;
        const differences = this.word_differences;
        differences.fill(0);
        for (let index = 1; index < count; index++) {
            for (let word = 0; word < key_words; word++) {
                differences[word]! |= keys[index * key_words + word]! ^ keys[word]!;
            }
        }
        let from = this.order, to = this.order_scratch;
        for (let word = 0; word < key_words; word++) {
            for (let shift = 0; shift < 32; shift += radix_digit_bits) {
                if (((differences[word]! >>> shift) & (radix_digit_count - 1)) === 0) continue;
                this.radix_pass(from, to, word, shift);
                const swap = from;
                from = to;
                to = swap;
            }
        }
        if (from !== this.order) this.order.set(from.subarray(0, count));
        this.order_fresh = true;
        for (let index = 1; index < count; index++) {
            const previous = this.order[index - 1]! * key_words;
            if (key_compare(keys, previous, keys, this.order[index]! * key_words,
                key_words) >= 0) assert.fail('lsm: the sorted table is out of order');
        }
    }

    /** One stable counting pass: `from` ordered by the digit at (word, shift) into `to`. */
    private radix_pass(from: Uint32Array, to: Uint32Array, word: number, shift: number): void {
        const count = this.count, key_words = this.key_words, keys = this.keys;
        const counts = this.digit_counts, mask = radix_digit_count - 1;
        assert(shift >= 0 && shift < 32 && word < key_words);
        counts.fill(0);
        for (let index = 0; index < count; index++) {
            counts[((keys[from[index]! * key_words + word]! >>> shift) & mask) + 1]! += 1;
        }
        for (let digit = 1; digit <= radix_digit_count; digit++) {
            counts[digit]! += counts[digit - 1]!;
        }
        assert.equal(counts[radix_digit_count], count);
        for (let index = 0; index < count; index++) {
            const entry = from[index]!;
            const digit = (keys[entry * key_words + word]! >>> shift) & mask;
            to[counts[digit]!] = entry;
            counts[digit]! += 1;
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
