// The manifest: which tables make up each level of a tree. A table's info is its key range, the
// snapshot (beat) that wrote it, its data block and entry counts and the reference of its index
// block (checksum, address, size). Within a level, tables never overlap and are kept sorted by key,
// so "the table that may hold key k" is one binary search, and a scan walks a level in order.
//
// Every level's arrays are sized at construction from its table count bound; inserting past it
// is a capacity error asserted, never growth. A forest persists the manifest as a log of these
// inserts and removes (manifest_log.ts); each table remembers which log block holds its insert.
import assert from 'node:assert/strict';

import { reference_size, reference_address } from '../vsr/grid';
import { key_compare, key_copy, keys_lower_bound } from './key';

export class Manifest {
    readonly level_count: number;
    readonly key_words: number;
    /** Per level: the tables it may hold (its arrays' capacity). */
    readonly tables_max: Uint32Array;
    readonly counts: Uint32Array;
    readonly key_min: Uint32Array[];
    readonly key_max: Uint32Array[];
    readonly references: Uint8Array[];
    readonly snapshot_min: Float64Array[];
    readonly data_block_count: Uint32Array[];
    readonly entry_count: Uint32Array[];
    /** The sequence of the manifest log block that holds the table's insert; 0: not written. */
    readonly log_block: Float64Array[];

    constructor(level_count: number, key_words: number, tables_max: readonly number[]) {
        assert(level_count >= 1 && tables_max.length === level_count);
        assert(key_words >= 1);
        this.level_count = level_count;
        this.key_words = key_words;
        this.tables_max = Uint32Array.from(tables_max);
        this.counts = new Uint32Array(level_count);
        this.key_min = tables_max.map((count) => new Uint32Array(count * key_words));
        this.key_max = tables_max.map((count) => new Uint32Array(count * key_words));
        this.references = tables_max.map((count) => new Uint8Array(count * reference_size));
        this.snapshot_min = tables_max.map((count) => new Float64Array(count));
        this.data_block_count = tables_max.map((count) => new Uint32Array(count));
        this.entry_count = tables_max.map((count) => new Uint32Array(count));
        this.log_block = tables_max.map((count) => new Float64Array(count));
        assert(this.tables_max.every((count) => count >= 1));
    }

    table_count_total(): number {
        assert(this.counts.length === this.level_count);
        let total = 0;
        for (let level = 0; level < this.level_count; level++) total += this.counts[level]!;
        return total;
    }

    /** The first table in `level` whose key_max is >= key; `counts[level]` when none. */
    lower_bound(level: number, key: Uint32Array, key_word: number): number {
        assert(level >= 0 && level < this.level_count);
        return keys_lower_bound(this.key_max[level]!, 0, this.counts[level]!, this.key_words,
            key, key_word);
    }

    /** The table of `level` whose range holds key, or -1. */
    find(level: number, key: Uint32Array, key_word: number): number {
        const position = this.lower_bound(level, key, key_word);
        if (position === this.counts[level]) return -1;
        const below = key_compare(key, key_word, this.key_min[level]!, position * this.key_words,
            this.key_words);
        return below < 0 ? -1 : position;
    }

    /** How many tables from `start` on have key_min <= key (with lower_bound: an overlap). */
    overlap_count(level: number, start: number, key: Uint32Array, key_word: number): number {
        const count = this.counts[level]!;
        assert(start >= 0 && start <= count);
        let end = start;
        for (; end < count; end++) {
            if (key_compare(this.key_min[level]!, end * this.key_words, key, key_word,
                this.key_words) > 0) break;
        }
        return end - start;
    }

    index_address(level: number, position: number): number {
        assert(position >= 0 && position < this.counts[level]!);
        const address = reference_address(this.references[level]!, position * reference_size);
        assert(address >= 1, 'lsm: a table without an index block');
        return address;
    }

    /** The position in `level` of the table whose index reference is `reference`, or -1. */
    find_reference(level: number, key_min: Uint32Array, key_min_word: number,
        reference: Uint8Array, reference_offset: number): number {
        const position = this.find(level, key_min, key_min_word);
        if (position === -1) return -1;
        const references = this.references[level]!;
        for (let byte = 0; byte < reference_size; byte++) {
            if (references[position * reference_size + byte] !==
                reference[reference_offset + byte]) return -1;
        }
        return position;
    }

    /** Inserts a table at its place by key (returned); it must not overlap its neighbours. */
    insert(level: number, key_min: Uint32Array, key_min_word: number, key_max: Uint32Array,
        key_max_word: number, reference: Uint8Array, reference_offset: number,
        snapshot: number, data_block_count: number, entry_count: number): number {
        const count = this.counts[level]!;
        assert(count < this.tables_max[level]!, `lsm: level ${level} is full (${count} tables)`);
        assert(key_compare(key_min, key_min_word, key_max, key_max_word, this.key_words) <= 0);
        assert(data_block_count >= 1 && entry_count >= data_block_count);
        const position = this.lower_bound(level, key_min, key_min_word);
        if (position < count) {
            assert(key_compare(key_max, key_max_word, this.key_min[level]!,
                position * this.key_words, this.key_words) < 0, 'lsm: tables overlap');
        }
        if (position > 0) {
            assert(key_compare(this.key_max[level]!, (position - 1) * this.key_words, key_min,
                key_min_word, this.key_words) < 0, 'lsm: tables overlap');
        }
        this.shift(level, position, count, 1);
        const w = position * this.key_words;
        key_copy(this.key_min[level]!, w, key_min, key_min_word, this.key_words);
        key_copy(this.key_max[level]!, w, key_max, key_max_word, this.key_words);
        this.references[level]!.set(
            reference.subarray(reference_offset, reference_offset + reference_size),
            position * reference_size);
        this.snapshot_min[level]![position] = snapshot;
        this.data_block_count[level]![position] = data_block_count;
        this.entry_count[level]![position] = entry_count;
        this.log_block[level]![position] = 0;
        this.counts[level] = count + 1;
        return position;
    }

    remove(level: number, position: number): void {
        const count = this.counts[level]!;
        assert(position >= 0 && position < count);
        this.shift(level, position + 1, count, -1);
        // The freed last row is zeroed: the arrays hold only live tables.
        const last = count - 1;
        this.key_min[level]!.fill(0, last * this.key_words, count * this.key_words);
        this.key_max[level]!.fill(0, last * this.key_words, count * this.key_words);
        this.references[level]!.fill(0, last * reference_size, count * reference_size);
        this.snapshot_min[level]![last] = 0;
        this.data_block_count[level]![last] = 0;
        this.entry_count[level]![last] = 0;
        this.log_block[level]![last] = 0;
        this.counts[level] = last;
    }

    /** Moves rows [from, count) by `by` (+1: open a gap at `from`; -1: close one before it). */
    private shift(level: number, from: number, count: number, by: 1 | -1): void {
        const words = this.key_words;
        assert(from + by >= 0 && count + by <= this.tables_max[level]!);
        this.key_min[level]!.copyWithin((from + by) * words, from * words, count * words);
        this.key_max[level]!.copyWithin((from + by) * words, from * words, count * words);
        this.references[level]!.copyWithin((from + by) * reference_size, from * reference_size,
            count * reference_size);
        this.snapshot_min[level]!.copyWithin(from + by, from, count);
        this.data_block_count[level]!.copyWithin(from + by, from, count);
        this.entry_count[level]!.copyWithin(from + by, from, count);
        this.log_block[level]!.copyWithin(from + by, from, count);
    }
}
