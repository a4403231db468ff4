// Compaction: merging a sorted run into the next level. A job takes its source (the immutable
// table, or one table of level L) and the tables of level L + 1 that overlap it, and writes their
// merge as new tables of level L + 1. Where a key is in both, the source's entry (newer) wins and
// the older one is dropped; a tombstone is dropped too once no deeper level holds data, since
// nothing older is left for it to hide. A source table that overlaps nothing is moved (its info
// changes level; no block is read or written).
//
// A job is paced: at its start it knows its input entry count, and each beat consumes at most
// ceil(input / beats) entries, so that it ends within its half-bar while every beat does a
// bounded, even share. It merges in place from its iterators' block buffers into its writer's
// buffers, and stops whenever it needs I/O (a block to read, a full block written); the tree
// issues every job's I/O together and resumes the jobs when all of it has completed. Inputs stay
// in the manifest, and stay readable, until the job installs its outputs in one step.
import assert from 'node:assert/strict';

import { reference_size, reference_write } from '../vsr/grid';
import { key_compare, key_copy } from './key';
import {
    block_type_data, block_type_index, lsm_block_seal, TableLayout,
} from './table_format';
import {
    EntryIterator, iterator_done, iterator_need_data, iterator_need_index, iterator_ready,
    LevelIterator, MemoryTableIterator,
} from './iterator';
import type { Manifest } from './manifest';
import type { MemoryTable } from './table_memory';

/** What a job needs from its tree: blocks loaded into iterators, addresses, writes. */
export interface CompactionIo {
    /** Loads what the iterator needs (always a read): true if a read is in flight. */
    iterator_fill(iterator: LevelIterator): boolean;
    block_acquire(): number;
    block_write(address: number, memory_offset: number): void;
}

export const step_io = 1;
export const step_quota = 2;
export const step_installable = 3;

/** Builds tables block by block in two buffers: the data block being filled and the index. */
export class TableWriter {
    private readonly layout: TableLayout;
    private readonly memory: Uint8Array;
    private readonly words: Uint32Array;
    /** Where the data block being filled is (moved by a writer that keeps every block). */
    data_offset: number;
    readonly index_offset: number;
    data_count = 0;
    data_block_count = 0;
    table_entry_count = 0;
    /** A buffer's last block may still be being written: it is zeroed before reuse. */
    private data_stale = false;
    private index_stale = false;

    constructor(layout: TableLayout, memory: Uint8Array, words: Uint32Array, data_offset: number,
        index_offset: number) {
        assert(data_offset % 4 === 0 && index_offset % 4 === 0);
        assert(words.buffer === memory.buffer);
        this.layout = layout;
        this.memory = memory;
        this.words = words;
        this.data_offset = data_offset;
        this.index_offset = index_offset;
        this.memory.fill(0, data_offset, data_offset + layout.block_size_bytes);
        this.memory.fill(0, index_offset, index_offset + layout.block_size_bytes);
    }

    /** Entries the data block being filled still has room for. */
    get data_free(): number {
        assert(this.data_count <= this.layout.data_entry_count_max);
        return this.layout.data_entry_count_max - this.data_count;
    }

    /**
     * Appends the iterator's next `count` entries (count <= run_remaining and <= data_free),
     * leaving out tombstones when `drop_tombstones`; returns how many it wrote. A contiguous run
     * with nothing to leave out is two block copies; any other entry by entry.
     */
    append_run(iterator: EntryIterator, count: number, drop_tombstones: boolean): number {
        const layout = this.layout;
        assert(count >= 1 && count <= this.data_free && count <= iterator.run_remaining);
        if (this.data_stale) {
            this.memory.fill(0, this.data_offset, this.data_offset + layout.block_size_bytes);
            this.data_stale = false;
        }
        const key_words = layout.key_words, value_words = layout.value_words;
        const words = this.words;
        const keys_word = (this.data_offset + layout.data_key_offset(0)) / 4;
        const values_word = (this.data_offset + layout.data_value_offset(0)) / 4;
        const tombstones_word = (this.data_offset + layout.data_tombstones_offset) / 4;
        let tombstones = 0;
        for (let offset = 0; offset < count; offset++) {
            if (iterator.tombstone_at(offset)) tombstones += 1;
        }
        const start = this.data_count;
        if (iterator.contiguous && (tombstones === 0 || !drop_tombstones)) {
            words_copy(words, keys_word + start * key_words, iterator.keys, iterator.key_word,
                count * key_words);
            words_copy(words, values_word + start * value_words, iterator.values,
                iterator.value_word, count * value_words);
            this.data_count += count;
        } else {
            const keys = iterator.keys, values = iterator.values;
            for (let offset = 0; offset < count; offset++) {
                if (drop_tombstones && iterator.tombstone_at(offset)) continue;
                const key_word = iterator.key_word_at(offset);
                const key_target = keys_word + this.data_count * key_words;
                for (let word = 0; word < key_words; word++) {
                    words[key_target + word] = keys[key_word + word]!;
                }
                const value_word = iterator.value_word_at(offset);
                const value_target = values_word + this.data_count * value_words;
                for (let word = 0; word < value_words; word++) {
                    words[value_target + word] = values[value_word + word]!;
                }
                this.data_count += 1;
            }
        }
        if (tombstones > 0 && !drop_tombstones) {
            for (let offset = 0; offset < count; offset++) {
                if (!iterator.tombstone_at(offset)) continue;
                const index = start + offset;
                words[tombstones_word + (index >>> 5)]! |= 1 << (index & 31);
            }
        }
        const written = this.data_count - start;
        assert(written === count - (drop_tombstones ? tombstones : 0));
        assert(this.data_count <= layout.data_entry_count_max);
        return written;
    }

    /**
     * Fills the next data block in another buffer: a checkpoint writes all of a table's blocks
     * in one round, so none of them is reused while its write is in flight.
     */
    data_buffer_move(data_offset: number): void {
        assert(this.data_count === 0 && data_offset % 4 === 0);
        assert(data_offset + this.layout.block_size_bytes <= this.memory.length);
        this.data_offset = data_offset;
        this.data_stale = true;
    }

    get data_full(): boolean {
        assert(this.data_count <= this.layout.data_entry_count_max);
        return this.data_count === this.layout.data_entry_count_max;
    }

    get table_full(): boolean {
        assert(this.data_block_count <= this.layout.data_block_count_max);
        return this.data_block_count === this.layout.data_block_count_max;
    }

    /** Seals and writes the data block, and names it in the index. */
    data_flush(io: CompactionIo, cluster: Uint8Array, tree_id: number, snapshot: number): void {
        const layout = this.layout;
        assert(this.data_count >= 1 && this.data_block_count < layout.data_block_count_max);
        if (this.index_stale) {
            this.memory.fill(0, this.index_offset, this.index_offset + layout.block_size_bytes);
            this.index_stale = false;
        }
        const address = io.block_acquire();
        assert(address >= 1, 'lsm: the grid is full');
        lsm_block_seal(this.memory, this.data_offset, layout, cluster, address, snapshot,
            block_type_data, tree_id, this.data_count, 0);
        const slot = this.data_block_count;
        const key_words = layout.key_words;
        const first = (this.data_offset + layout.data_key_offset(0)) / 4;
        const last = (this.data_offset + layout.data_key_offset(this.data_count - 1)) / 4;
        key_copy(this.words, (this.index_offset + layout.data_key_offset(slot)) / 4,
            this.words, first, key_words);
        key_copy(this.words, (this.index_offset + layout.index_key_max_offset) / 4 +
            slot * key_words, this.words, last, key_words);
        reference_write(this.memory, this.index_offset + layout.index_reference_offset(slot),
            this.memory, this.data_offset);
        io.block_write(address, this.data_offset);
        assert(this.data_block_count < layout.data_block_count_max);
        this.data_block_count += 1;
        this.table_entry_count += this.data_count;
        this.data_count = 0;
        this.data_stale = true;
        assert(this.table_entry_count <= layout.table_entry_count_max);
    }

    /** Seals and writes the index block; returns its address (the reference is in the block). */
    index_flush(io: CompactionIo, cluster: Uint8Array, tree_id: number, snapshot: number): number {
        assert(this.data_count === 0 && this.data_block_count >= 1);
        const address = io.block_acquire();
        assert(address >= 1, 'lsm: the grid is full');
        lsm_block_seal(this.memory, this.index_offset, this.layout, cluster, address, snapshot,
            block_type_index, tree_id, this.data_block_count, this.table_entry_count);
        assert(this.table_entry_count >= this.data_block_count);
        io.block_write(address, this.index_offset);
        this.data_block_count = 0;
        this.table_entry_count = 0;
        this.index_stale = true;
        return address;
    }
}

/** Copies a run of words: a memmove within one array, else one view of the source per run. */
function words_copy(target: Uint32Array, target_word: number, source: Uint32Array,
    source_word: number, count: number): void {
    assert(count >= 0 && target_word + count <= target.length);
    if (source === target) {
        assert(source_word + count <= target_word || target_word + count <= source_word);
        target.copyWithin(target_word, source_word, source_word + count);
    } else {
        target.set(source.subarray(source_word, source_word + count), target_word);
    }
}

/** The tables a job wrote, installed together when it ends. */
export class JobOutputs {
    readonly key_min: Uint32Array;
    readonly key_max: Uint32Array;
    readonly references: Uint8Array;
    readonly data_block_count: Uint32Array;
    readonly entry_count: Uint32Array;
    count = 0;

    constructor(key_words: number, tables_max: number) {
        assert(tables_max >= 1);
        this.key_min = new Uint32Array(tables_max * key_words);
        this.key_max = new Uint32Array(tables_max * key_words);
        this.references = new Uint8Array(tables_max * reference_size);
        this.data_block_count = new Uint32Array(tables_max);
        this.entry_count = new Uint32Array(tables_max);
    }

    clear(): void {
        assert(this.count <= this.entry_count.length);
        this.key_min.fill(0);
        this.key_max.fill(0);
        this.references.fill(0);
        this.data_block_count.fill(0);
        this.entry_count.fill(0);
        this.count = 0;
    }
}

function iterator_needs_block(iterator: EntryIterator): boolean {
    assert(iterator.state >= iterator_done && iterator.state <= iterator_need_data);
    return iterator.state === iterator_need_index || iterator.state === iterator_need_data;
}

/** One compaction into `target_level`, from the immutable table or from the level above. */
export class CompactionJob {
    readonly target_level: number;
    /** -1: the immutable table; otherwise target_level - 1. */
    readonly source_level: number;
    active = false;
    /** Every input consumed and the last blocks written: the job waits to be installed. */
    private finishing = false;
    private readonly layout: TableLayout;
    private readonly manifest: Manifest;
    private readonly cluster: Uint8Array;
    private readonly tree_id: number;
    private source: EntryIterator;
    private readonly source_memory: MemoryTableIterator;
    readonly source_iterator: LevelIterator;
    readonly target_iterator: LevelIterator;
    readonly source_releases: Uint32Array;
    readonly target_releases: Uint32Array;
    private readonly writer: TableWriter;
    readonly outputs: JobOutputs;
    source_position = 0;
    target_start = 0;
    target_count = 0;
    private drop_tombstones = false;
    private snapshot = 0;
    entries_total = 0;
    entries_consumed = 0;
    private quota = 0;
    /** Input entries consumed in the current beat (at most the quota, + 1 for a shadowed key). */
    beat_consumed = 0;
    /** Entries written in data blocks (write amplification) and blocks written. */
    entries_written = 0;
    blocks_written = 0;
    private readonly iterations_max: number;
    private readonly memory: Uint8Array;
    private readonly words: Uint32Array;

    constructor(options: {
        layout: TableLayout; manifest: Manifest; cluster: Uint8Array; tree_id: number;
        target_level: number; memory: Uint8Array; words: Uint32Array; buffers_offset: number;
        immutable: MemoryTable; target_tables_max: number;
    }) {
        const { layout, memory, words, buffers_offset } = options;
        assert(options.target_level >= 0 && options.target_level < options.manifest.level_count);
        assert(options.target_tables_max >= 1);
        const block = layout.block_size_bytes;
        this.layout = layout;
        this.memory = memory;
        this.words = words;
        this.manifest = options.manifest;
        this.cluster = options.cluster;
        this.tree_id = options.tree_id;
        this.target_level = options.target_level;
        this.source_level = options.target_level - 1;
        this.source_memory = new MemoryTableIterator(options.immutable);
        this.source_iterator = new LevelIterator(memory, words, layout, options.manifest,
            buffers_offset, buffers_offset + block);
        this.target_iterator = new LevelIterator(memory, words, layout, options.manifest,
            buffers_offset + 2 * block, buffers_offset + 3 * block);
        this.writer = new TableWriter(layout, memory, words, buffers_offset + 4 * block,
            buffers_offset + 5 * block);
        this.source = this.source_memory;
        const blocks_per_table = layout.data_block_count_max + 1;
        this.source_releases = new Uint32Array(blocks_per_table);
        this.target_releases = new Uint32Array(options.target_tables_max * blocks_per_table);
        // The merge of n input tables fills at most n + 1 output tables.
        this.outputs = new JobOutputs(layout.key_words, options.target_tables_max + 2);
        this.iterations_max = layout.table_entry_count_max + 2 * layout.data_entry_count_max + 2;
    }

    /** Buffers a job needs: two per input iterator, two for its writer. */
    static buffer_count = 6;

    /** Starts merging the immutable table (sorted, non-empty) into the target level. */
    start_immutable(immutable: MemoryTable, beat_count: number, snapshot: number): void {
        assert(this.source_level === -1 && !this.active);
        assert(immutable.sorted && immutable.count >= 1);
        const key_words = this.layout.key_words;
        const key_min_word = immutable.order[0]! * key_words;
        const key_max_word = immutable.order[immutable.count - 1]! * key_words;
        this.source_memory.start(immutable, 0);
        this.source = this.source_memory;
        assert(key_compare(immutable.keys, key_min_word, immutable.keys, key_max_word,
            key_words) <= 0);
        this.start_common(immutable.keys, key_min_word, immutable.keys, key_max_word,
            immutable.count, beat_count, snapshot);
    }

    /**
     * Starts merging table `position` of the source level into the target level. Returns false
     * (and starts nothing) when the table overlaps nothing there: the caller moves it instead.
     */
    start_table(position: number, beat_count: number, snapshot: number): boolean {
        assert(this.source_level >= 0 && !this.active);
        const level = this.source_level;
        const manifest = this.manifest;
        const key_word = position * this.layout.key_words;
        const start = manifest.lower_bound(this.target_level, manifest.key_min[level]!, key_word);
        if (manifest.overlap_count(this.target_level, start, manifest.key_max[level]!,
            key_word) === 0) return false;
        assert(position >= 0 && position < manifest.counts[level]!);
        this.source_position = position;
        this.source_iterator.start(level, position, position + 1, null, 0, this.source_releases);
        this.source = this.source_iterator;
        this.start_common(manifest.key_min[level]!, key_word, manifest.key_max[level]!, key_word,
            manifest.entry_count[level]![position]!, beat_count, snapshot);
        assert(this.target_count >= 1 && this.active);
        return true;
    }

    private start_common(keys_min: Uint32Array, key_min_word: number, keys_max: Uint32Array,
        key_max_word: number, source_entries: number, beat_count: number,
        snapshot: number): void {
        assert(beat_count >= 1 && source_entries >= 1);
        const manifest = this.manifest;
        const target = this.target_level;
        this.target_start = manifest.lower_bound(target, keys_min, key_min_word);
        this.target_count = manifest.overlap_count(target, this.target_start, keys_max,
            key_max_word);
        this.target_neighbours_take();
        assert(this.target_count <= this.target_releases.length /
            (this.layout.data_block_count_max + 1), 'lsm: a compaction has too many inputs');
        this.target_iterator.start(target, this.target_start,
            this.target_start + this.target_count, null, 0, this.target_releases);
        // Nothing deeper than the target: no older entry remains for a tombstone to hide.
        this.drop_tombstones = true;
        for (let level = target + 1; level < manifest.level_count; level++) {
            if (manifest.counts[level]! > 0) this.drop_tombstones = false;
        }
        this.snapshot = snapshot;
        this.outputs.clear();
        this.finishing = false;
        this.active = true;
        this.totals(source_entries, beat_count);
    }

    /**
     * Takes in a less than half full table on either side of the overlap: a job's last output is
     * rarely full, and without this the partly filled tables of a level would only accumulate.
     */
    private target_neighbours_take(): void {
        const manifest = this.manifest;
        const level = this.target_level;
        const half = this.layout.table_entry_count_max / 2;
        assert(this.target_start >= 0 && half >= 1);
        const before = this.target_start - 1;
        if (before >= 0 && manifest.entry_count[level]![before]! < half) {
            this.target_start = before;
            this.target_count += 1;
        }
        const after = this.target_start + this.target_count;
        if (after < manifest.counts[level]! && manifest.entry_count[level]![after]! < half) {
            this.target_count += 1;
        }
        assert(this.target_start + this.target_count <= manifest.counts[level]!);
    }

    private totals(source_entries: number, beat_count: number): void {
        assert(source_entries >= 1 && beat_count >= 1);
        let total = source_entries;
        for (let index = 0; index < this.target_count; index++) {
            total += this.manifest.entry_count[this.target_level]![this.target_start + index]!;
        }
        this.entries_total = total;
        this.entries_consumed = 0;
        this.quota = Math.ceil(total / beat_count);
        assert(this.quota >= 1 && this.quota * beat_count >= total);
    }

    beat_start(): void {
        assert(this.active);
        assert(this.entries_consumed <= this.entries_total);
        this.beat_consumed = 0;
    }

    /** Merges until the job needs I/O, reaches this beat's quota, or can be installed. */
    step(io: CompactionIo): number {
        assert(this.active);
        if (this.finishing) return step_installable;
        for (let iteration = 0; iteration < this.iterations_max; iteration++) {
            if (this.writer.data_full) {
                this.data_flush(io);
                return step_io;
            }
            let reading = false;
            if (iterator_needs_block(this.source)) {
                reading = io.iterator_fill(this.source_iterator) || reading;
            }
            if (iterator_needs_block(this.target_iterator)) {
                reading = io.iterator_fill(this.target_iterator) || reading;
            }
            if (reading) return step_io;
            // A job's blocks are always read (never taken from the cache): none is pending.
            assert(!iterator_needs_block(this.source));
            assert(!iterator_needs_block(this.target_iterator));
            if (this.source.state === iterator_done &&
                this.target_iterator.state === iterator_done) {
                return this.finish(io);
            }
            if (this.beat_consumed >= this.quota) {
                assert(this.beat_consumed <= this.quota + 1, 'lsm: a beat overran its quota');
                return step_quota;
            }
            this.merge_one();
        }
        assert.fail('lsm: a compaction step did not reach I/O, its quota or its end');
    }

    /**
     * Merges the next run: the entries of one input that come before the other's current key,
     * within what is in memory, the writer's block and this beat's quota. The sequence of entries
     * consumed and written is the one an entry-by-entry merge gives, so blocks and beats are
     * the same bytes and the same shares.
     */
    private merge_one(): void {
        const source = this.source;
        const target = this.target_iterator;
        const key_words = this.layout.key_words;
        assert(source.state === iterator_ready || target.state === iterator_ready);
        assert(!this.writer.data_full && this.beat_consumed < this.quota);
        let taken: EntryIterator = source.state === iterator_ready ? source : target;
        let other: EntryIterator = taken === source ? target : source;
        if (source.state === iterator_ready && target.state === iterator_ready) {
            const order = key_compare(source.keys, source.key_word, target.keys, target.key_word,
                key_words);
            if (order > 0) {
                taken = target;
                other = source;
            }
            if (order === 0) {
                // The same key, older: the source's entry replaces it.
                target.advance();
                this.consumed(1);
                this.take(source, 1);
                return;
            }
        }
        assert(taken.state === iterator_ready);
        const limit = Math.min(taken.run_remaining, this.writer.data_free,
            this.quota - this.beat_consumed);
        const bound = other.state === iterator_ready ? other : null;
        const count = taken.run_below(limit, bound === null ? null : bound.keys,
            bound === null ? 0 : bound.key_word, key_words);
        // The taken input's current key is below the other's: the run has at least it.
        assert(count >= 1 && count <= limit);
        this.take(taken, count);
    }

    private take(iterator: EntryIterator, count: number): void {
        this.entries_written += this.writer.append_run(iterator, count, this.drop_tombstones);
        iterator.skip(count);
        this.consumed(count);
    }

    private consumed(count: number): void {
        assert(count >= 1);
        this.entries_consumed += count;
        this.beat_consumed += count;
        assert(this.entries_consumed <= this.entries_total);
    }

    private data_flush(io: CompactionIo): void {
        assert(this.writer.data_count >= 1);
        this.writer.data_flush(io, this.cluster, this.tree_id, this.snapshot);
        this.blocks_written += 1;
        if (this.writer.table_full) this.table_flush(io);
    }

    private table_flush(io: CompactionIo): void {
        const writer = this.writer;
        const layout = this.layout;
        const outputs = this.outputs;
        const index = outputs.count;
        assert(index < outputs.entry_count.length, 'lsm: a compaction wrote too many tables');
        const words = this.words;
        const key_words = layout.key_words;
        key_copy(outputs.key_min, index * key_words, words,
            (writer.index_offset + layout.data_key_offset(0)) / 4, key_words);
        key_copy(outputs.key_max, index * key_words, words,
            (writer.index_offset + layout.index_key_max_offset) / 4 +
            (writer.data_block_count - 1) * key_words, key_words);
        outputs.data_block_count[index] = writer.data_block_count;
        outputs.entry_count[index] = writer.table_entry_count;
        const address = writer.index_flush(io, this.cluster, this.tree_id, this.snapshot);
        assert(address >= 1);
        reference_write(outputs.references, index * reference_size, this.memory,
            writer.index_offset);
        this.blocks_written += 1;
        outputs.count += 1;
        assert(outputs.data_block_count[index]! >= 1 && outputs.entry_count[index]! >= 1);
    }

    private finish(io: CompactionIo): number {
        assert(this.entries_consumed === this.entries_total, 'lsm: compaction lost entries');
        assert(this.source.state === iterator_done);
        this.finishing = true;
        const blocks = this.blocks_written;
        if (this.writer.data_count > 0) this.data_flush(io);
        if (this.writer.data_block_count > 0) this.table_flush(io);
        assert(this.writer.data_count === 0 && this.writer.data_block_count === 0);
        return this.blocks_written > blocks ? step_io : step_installable;
    }

    /** The job is installed: ready for the next one. */
    installed(): void {
        assert(this.active && this.finishing);
        this.active = false;
        this.finishing = false;
        this.entries_written = 0;
    }
}
