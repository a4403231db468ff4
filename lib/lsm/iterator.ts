// Iterators over sorted runs, the common shape that compaction merges and range scans read: a
// memory table in key order, or consecutive tables of one level (index block, then its data
// blocks in order, then the next table). An iterator exposes its current entry in place (which
// array, which word) so that a merge compares and copies without objects. A level iterator that
// needs a block says so by its state; the tree loads the block into the iterator's own buffers
// (from the cache or by a read) and calls `loaded`.
import assert from 'node:assert/strict';

import { reference_size } from '../vsr/grid';
import { key_compare, key_copy, keys_lower_bound, key_words_max } from './key';
import { block_count, TableLayout } from './table_format';
import type { Manifest } from './manifest';
import type { MemoryTable } from './table_memory';

export const iterator_done: number = 0;
export const iterator_ready: number = 1;
export const iterator_need_index: number = 2;
export const iterator_need_data: number = 3;

export interface EntryIterator {
    state: number;
    keys: Uint32Array;
    key_word: number;
    values: Uint32Array;
    value_word: number;
    tombstone: boolean;
    /**
     * Entries from the current one to the end of what lies in memory (the current data block,
     * or the rest of a memory table), so that a merge copies runs, not entries.
     */
    readonly run_remaining: number;
    /** The entry `offset` past the current one (offset < run_remaining): key, value, tombstone. */
    key_word_at(offset: number): number;
    value_word_at(offset: number): number;
    tombstone_at(offset: number): boolean;
    /** Whether a run's keys and values lie contiguously from key_word and value_word. */
    readonly contiguous: boolean;
    /**
     * How many of the next `limit` entries (limit <= run_remaining) have keys below the key at
     * bound[bound_word] (every one of them when bound is null).
     */
    run_below(limit: number, bound: Uint32Array | null, bound_word: number,
        key_words: number): number;
    advance(): void;
    /** Advances by `count` entries (1 <= count <= run_remaining). */
    skip(count: number): void;
    stop(): void;
}

/** What every iterator exposes, written once: its state and its current entry, in place. */
abstract class EntryCursor implements EntryIterator {
    state = iterator_done;
    keys: Uint32Array;
    key_word = 0;
    values: Uint32Array;
    value_word = 0;
    tombstone = false;

    protected constructor(keys: Uint32Array, values: Uint32Array) {
        assert(keys.length >= 1, 'lsm: an iterator over no keys');
        this.keys = keys;
        this.values = values;
    }

    abstract readonly run_remaining: number;
    abstract readonly contiguous: boolean;
    abstract key_word_at(offset: number): number;
    abstract value_word_at(offset: number): number;
    abstract tombstone_at(offset: number): boolean;
    abstract skip(count: number): void;
    abstract stop(): void;

    advance(): void {
        this.skip(1);
    }

    run_below(limit: number, bound: Uint32Array | null, bound_word: number,
        key_words: number): number {
        assert(this.state === iterator_ready && limit >= 1 && limit <= this.run_remaining);
        if (bound === null) return limit;
        if (this.contiguous) {
            // Sorted and in place: a binary search, not a compare per entry.
            return keys_lower_bound(this.keys, this.key_word, limit, key_words, bound,
                bound_word);
        }
        let count = 0;
        for (; count < limit; count++) {
            if (key_compare(this.keys, this.key_word_at(count), bound, bound_word,
                key_words) >= 0) break;
        }
        return count;
    }
}

export class MemoryTableIterator extends EntryCursor {
    private table: MemoryTable;
    private position = 0;
    /** Entries in the order they were put (a checkpoint's copy), not in key order. */
    private by_insertion = false;

    constructor(table: MemoryTable) {
        super(table.keys, table.values);
        this.table = table;
        assert(table.key_words >= 1);
    }

    /** Starts at the entry of `order` at `position` (the tables swap roles: pass which one). */
    start(table: MemoryTable, position: number): void {
        assert(position >= 0 && position <= table.count);
        assert(table.order_fresh, 'lsm: iterating a table whose order is stale');
        this.table = table;
        this.keys = table.keys;
        this.values = table.values;
        this.position = position;
        this.by_insertion = false;
        this.current();
    }

    /**
     * Starts at the first entry put, going in the order of the puts: the entries lie in place in
     * the table's arrays, so runs are copied whole (a checkpoint, which restores by putting them
     * again in this order, needs no key order).
     */
    start_insertion_order(table: MemoryTable): void {
        assert(!table.sorted || table.order_fresh);
        this.table = table;
        this.keys = table.keys;
        this.values = table.values;
        this.position = 0;
        this.by_insertion = true;
        this.current();
    }

    private entry_at(offset: number): number {
        const position = this.position + offset;
        assert(position < this.table.count);
        return this.by_insertion ? position : this.table.order[position]!;
    }

    private current(): void {
        assert(this.position <= this.table.count);
        if (this.position >= this.table.count) {
            this.state = iterator_done;
            return;
        }
        const entry = this.entry_at(0);
        assert(entry < this.table.count);
        this.key_word = entry * this.table.key_words;
        this.value_word = entry * this.table.value_words;
        this.tombstone = this.table.tombstones[entry] === 1;
        this.state = iterator_ready;
    }

    get run_remaining(): number {
        assert(this.position <= this.table.count);
        return this.table.count - this.position;
    }

    override run_below(limit: number, bound: Uint32Array | null, bound_word: number,
        key_words: number): number {
        // In the order of the puts the keys are not sorted: no bound can be searched for.
        assert(bound === null || !this.by_insertion, 'lsm: a merge of an unsorted table');
        return super.run_below(limit, bound, bound_word, key_words);
    }

    /** In key order, entries are reached through the table's order: one by one. */
    get contiguous(): boolean {
        return this.by_insertion;
    }

    key_word_at(offset: number): number {
        return this.entry_at(offset) * this.table.key_words;
    }

    value_word_at(offset: number): number {
        return this.entry_at(offset) * this.table.value_words;
    }

    tombstone_at(offset: number): boolean {
        return this.table.tombstones[this.entry_at(offset)] === 1;
    }

    skip(count: number): void {
        assert(this.state === iterator_ready);
        if (!(count >= 1 && this.position + count <= this.table.count)) {
            assert.fail('lsm: a skip past the table end');
        }
        this.position += count;
        this.current();
    }

    stop(): void {
        assert(this.state === iterator_ready || this.state === iterator_done);
        this.state = iterator_done;
    }
}

export class LevelIterator extends EntryCursor {
    /** A read into this iterator's buffers is in flight. */
    loading = false;
    readonly index_offset: number;
    readonly data_offset: number;
    private readonly memory: Uint8Array;
    private readonly words: Uint32Array;
    private readonly layout: TableLayout;
    private readonly manifest: Manifest;
    private level = 0;
    private table_position = 0;
    private table_end = 0;
    private data_block_position = 0;
    private data_block_count = 0;
    private entry_position = 0;
    private entry_count = 0;
    /** The first block loaded of a scan starts at the first key >= seek_key. */
    private seek = false;
    private readonly seek_key = new Uint32Array(key_words_max);
    /** Compaction frees every block it consumed: their addresses, when a list is given. */
    private release_addresses: Uint32Array | null = null;
    release_count = 0;

    constructor(memory: Uint8Array, words: Uint32Array, layout: TableLayout, manifest: Manifest,
        index_offset: number, data_offset: number) {
        // Keys and values are read in place from the block buffers, through `words`.
        super(words, words);
        assert(words.buffer === memory.buffer && words.byteOffset === memory.byteOffset);
        assert(index_offset % 4 === 0 && data_offset % 4 === 0);
        this.memory = memory;
        this.words = words;
        this.layout = layout;
        this.manifest = manifest;
        this.index_offset = index_offset;
        this.data_offset = data_offset;
    }

    /** Iterates tables [table_start, table_end) of `level`, from `seek_key` if given. */
    start(level: number, table_start: number, table_end: number, seek_key: Uint32Array | null,
        seek_word: number, release_addresses: Uint32Array | null): void {
        assert(!this.loading);
        assert(table_start >= 0 && table_end <= this.manifest.counts[level]!);
        this.level = level;
        this.table_position = table_start;
        this.table_end = table_end;
        this.seek = seek_key !== null;
        if (seek_key !== null) {
            key_copy(this.seek_key, 0, seek_key, seek_word, this.layout.key_words);
        }
        this.release_addresses = release_addresses;
        this.release_count = 0;
        this.state = table_start < table_end ? iterator_need_index : iterator_done;
    }

    /** Where the reference of the block this iterator needs lies: bytes and offset. */
    pending_reference_bytes(): Uint8Array {
        assert(this.table_position < this.table_end);
        assert(this.state === iterator_need_index || this.state === iterator_need_data);
        return this.state === iterator_need_index ? this.manifest.references[this.level]! :
            this.memory;
    }

    pending_reference_offset(): number {
        if (this.state === iterator_need_index) return this.table_position * reference_size;
        assert(this.state === iterator_need_data);
        return this.index_offset + this.layout.index_reference_offset(this.data_block_position);
    }

    pending_buffer_offset(): number {
        assert(!this.loading);
        assert(this.state === iterator_need_index || this.state === iterator_need_data);
        return this.state === iterator_need_index ? this.index_offset : this.data_offset;
    }

    /** The block named by the pending reference is now in its buffer, verified. */
    loaded(address: number): void {
        assert(!this.loading && address >= 1);
        if (this.release_addresses !== null) {
            assert(this.release_count < this.release_addresses.length, 'lsm: release list full');
            this.release_addresses[this.release_count] = address;
            this.release_count += 1;
        }
        if (this.state === iterator_need_index) this.index_loaded();
        else this.data_loaded();
    }

    private index_loaded(): void {
        this.data_block_count = block_count(this.memory, this.index_offset);
        assert(this.data_block_count >= 1 && this.data_block_count <=
            this.layout.data_block_count_max);
        this.data_block_position = 0;
        if (this.seek) {
            // The table was chosen with key_max >= seek_key, so some data block qualifies.
            this.data_block_position = keys_lower_bound(this.words,
                (this.index_offset + this.layout.index_key_max_offset) / 4,
                this.data_block_count, this.layout.key_words, this.seek_key, 0);
        }
        assert(this.data_block_position < this.data_block_count);
        this.state = iterator_need_data;
    }

    private data_loaded(): void {
        this.entry_count = block_count(this.memory, this.data_offset);
        assert(this.entry_count >= 1 && this.entry_count <= this.layout.data_entry_count_max);
        this.entry_position = 0;
        if (this.seek) {
            this.entry_position = keys_lower_bound(this.words,
                this.layout.data_key_offset(0) / 4 + this.data_offset / 4, this.entry_count,
                this.layout.key_words, this.seek_key, 0);
            this.seek = false;
        }
        assert(this.entry_position < this.entry_count);
        this.current();
    }

    private current(): void {
        const layout = this.layout;
        if (this.entry_position >= this.entry_count) assert.fail('lsm: past the block end');
        this.key_word = (this.data_offset + layout.data_key_offset(this.entry_position)) / 4;
        this.value_word = (this.data_offset + layout.data_value_offset(this.entry_position)) / 4;
        const bits = this.words[(this.data_offset + layout.data_tombstones_offset) / 4 +
            (this.entry_position >>> 5)]!;
        this.tombstone = ((bits >>> (this.entry_position & 31)) & 1) === 1;
        this.state = iterator_ready;
    }

    get run_remaining(): number {
        assert(this.state === iterator_ready && this.entry_position < this.entry_count);
        return this.entry_count - this.entry_position;
    }

    /** Keys and values each lie in order in the data block (keys[E] | values[E]). */
    get contiguous(): boolean {
        return true;
    }

    key_word_at(offset: number): number {
        return this.key_word + offset * this.layout.key_words;
    }

    value_word_at(offset: number): number {
        return this.value_word + offset * this.layout.value_words;
    }

    tombstone_at(offset: number): boolean {
        const position = this.entry_position + offset;
        const bits = this.words[(this.data_offset + this.layout.data_tombstones_offset) / 4 +
            (position >>> 5)]!;
        return ((bits >>> (position & 31)) & 1) === 1;
    }

    skip(count: number): void {
        assert(this.state === iterator_ready);
        if (!(count >= 1 && this.entry_position + count <= this.entry_count)) {
            assert.fail('lsm: a skip past the block end');
        }
        this.entry_position += count;
        if (this.entry_position < this.entry_count) {
            this.current();
        } else if (this.data_block_position + 1 < this.data_block_count) {
            this.data_block_position += 1;
            this.state = iterator_need_data;
        } else if (this.table_position + 1 < this.table_end) {
            this.table_position += 1;
            this.state = iterator_need_index;
        } else {
            this.state = iterator_done;
        }
    }

    stop(): void {
        assert(!this.loading);
        this.state = iterator_done;
    }
}

/** Whether iterator a's current key is below, equal to or above b's (both ready). */
export function iterator_compare(a: EntryIterator, b: EntryIterator, key_words: number): number {
    if (a.state !== iterator_ready || b.state !== iterator_ready) {
        assert.fail('lsm: comparing an iterator that is not ready');
    }
    return key_compare(a.keys, a.key_word, b.keys, b.key_word, key_words);
}
