// An LSM tree of fixed-size keys and values: a mutable table in memory, an immutable one, and
// `level_count` levels of immutable tables on the grid, each level a sorted run of disjoint
// tables holding up to growth_factor^(level + 1) of them before it compacts into the next.
//
// Operations (one at a time; each ends when the tree is idle again, the caller ticking the device
// meanwhile): put and remove (memory only, synchronous); a batch of point lookups; a range scan;
// a compaction beat. Lookups go newest first: the mutable table, the immutable table, then level
// 0 down, stopping at the first entry for the key (a tombstone answers "absent"). A lookup's
// blocks come through the block cache; a scan's and a compaction's come into their own buffers
// (copied from the cache when there, else read), so that a long scan or a compaction does not
// evict what lookups use.
//
// I/O is issued in rounds: an operation issues every read (and write) it can, the device gets
// them in one submission, and the operation resumes once all of them have completed. Every block
// read is verified against the reference its reader holds (parent index block or manifest)
// before anything uses it: a mismatch is refused with its address and the tree's id. A refusal
// ends the operation once its round has landed, with `refusal` set and nothing answered from
// the block; lookups and scans may run again (their state is rebuilt at each start), while a
// beat refused leaves a compaction half done: the tree takes no more beats (it needs repair).
//
// Pacing (TigerBeetle's beats and bars): the caller runs one beat per op. A bar is
// `bar_beat_count` beats. At a bar's first beat the mutable table becomes the immutable table and
// the compactions out of even levels start; at its middle beat those have ended and the
// compactions out of odd levels and of the immutable table start. Jobs running together touch
// disjoint levels. Each job does an even share of its input per beat, so it ends by its
// half-bar's end, asserted.
import assert from 'node:assert/strict';

import { block_verify, reference_address, reference_copy, reference_size } from '../vsr/grid';
import { u128_equal } from '../vsr/prepare_header';
import { frame } from '../vsr/header_layout';
import type { BlockCompletionTarget, BlockDevice } from './block_device';
import { BlockCache } from './block_cache';
import { key_compare, key_copy, keys_lower_bound } from './key';
import { Manifest } from './manifest';
import { event_insert, event_remove } from './manifest_log';
import type { ManifestLog } from './manifest_log';
import { MemoryTable } from './table_memory';
import {
    block_count, block_type_data, block_type_index, lsm_block_matches, TableLayout,
} from './table_format';
import {
    CompactionIo, CompactionJob, step_installable, step_io,
} from './compaction';
import {
    EntryIterator, iterator_done, iterator_need_data, iterator_need_index, iterator_ready,
    LevelIterator, MemoryTableIterator,
} from './iterator';

export interface TreeOptions {
    /** Names the tree in its blocks (1..65535): a block of another tree is refused. */
    tree_id: number;
    key_words: number;
    value_words: number;
    /** Puts and removes one bar may take: the mutable table's size. */
    bar_entry_count_max: number;
    /** Beats (ops) per bar; even, so that a bar has two halves. */
    bar_beat_count: number;
    level_count: number;
    growth_factor: number;
    /** The tree's own cache (unused when it shares a forest's). */
    cache_size_bytes: number;
    lookup_count_max: number;
    scan_count_max: number;
    /** The cluster id, in every block header. */
    cluster: Uint8Array;
}

/**
 * Why a block was refused: it is not the block its parent names (corrupt, misdirected). Names
 * the block's address and its owner: the tree (by id) or, with tree id 0, the forest's
 * checkpoint (its root, free set or manifest log).
 */
export class BlockRefusal extends Error {
    readonly address: number;
    readonly tree_id: number;

    constructor(address: number, tree_id: number, reason: string) {
        super(`lsm: block ${address} of ${tree_id === 0 ? 'the forest checkpoint' :
            `tree ${tree_id}`} refused: ${reason}`);
        assert(address >= 1 && reason.length > 0);
        assert(tree_id >= 0 && tree_id <= 0xffff);
        this.name = 'BlockRefusal';
        this.address = address;
        this.tree_id = tree_id;
    }
}

const operation_idle = 0;
const operation_lookup = 1;
const operation_scan = 2;
const operation_beat = 3;

const step_table = 0;
const step_index = 1;
const step_data = 2;
const step_done = 3;

export const lookup_pending = 0;
export const lookup_found = 1;
export const lookup_absent = 2;

/** The tree's statistics: what was put, written and read (write amplification). */
export class TreeStatistics {
    entries_put = 0;
    entries_written = 0;
    blocks_written = 0;
    blocks_read = 0;
    tables_moved = 0;
    rounds = 0;
    /** Compaction input entries consumed by the last beat, and by the busiest beat so far. */
    beat_entries_last = 0;
    beat_entries_max = 0;

    write_amplification(): number {
        assert(this.entries_put >= 0 && this.entries_written >= 0);
        return this.entries_put === 0 ? 0 : this.entries_written / this.entries_put;
    }
}

export function level_table_budget(growth_factor: number, level: number): number {
    assert(growth_factor >= 2 && level >= 0);
    return growth_factor ** (level + 1);
}

/**
 * A level's table capacity: twice its budget, room for the tables a bar adds before it drains and
 * for partly filled tables (a job's last output table is rarely full). The deepest level never
 * drains: its capacity is the tree's, four times its budget.
 */
export function level_tables_max(growth_factor: number, level: number,
    level_count: number): number {
    assert(Number.isInteger(growth_factor) && level < level_count && level_count <= 16);
    const budget = level_table_budget(growth_factor, level);
    assert(Number.isSafeInteger(budget * 4 + 4), 'lsm: too many levels for the growth factor');
    return (level === level_count - 1 ? 4 : 2) * budget + 4;
}

/** The blocks of memory a tree needs: its cache's slots (unless shared), scan and job buffers. */
export function tree_buffer_count(options: TreeOptions, block_size_bytes: number,
    cache_shared = false): number {
    assert(options.level_count >= 1);
    const buffers = 2 * options.level_count + CompactionJob.buffer_count * options.level_count;
    if (cache_shared) return buffers;
    const cache = BlockCache.slot_count_for(options.cache_size_bytes, block_size_bytes);
    assert(cache >= 16);
    return cache + buffers;
}

export class Tree implements BlockCompletionTarget, CompactionIo {
    readonly options: TreeOptions;
    readonly layout: TableLayout;
    readonly manifest: Manifest;
    readonly cache: BlockCache;
    readonly device: BlockDevice;
    readonly statistics = new TreeStatistics();
    private readonly memory: Uint8Array;
    private readonly words: Uint32Array;
    private mutable: MemoryTable;
    private immutable: MemoryTable;
    /** Job j compacts into level j (job 0: from the immutable table). */
    private readonly jobs: CompactionJob[];
    private readonly level_budgets: Uint32Array;
    private operation = operation_idle;
    /** Beats run so far: the snapshot written into blocks and tables. */
    beat = 0;
    /** Why the last operation ended early: a block it read was refused (null: it did not). */
    refusal: BlockRefusal | null = null;
    /** A beat was refused: its compaction cannot finish, so no beat may run again. */
    private beat_refused = false;
    /** Where a forest records every manifest change for its next checkpoint (null: alone). */
    manifest_log: ManifestLog | null = null;
    private io_in_flight = 0;
    // Reads in flight: per read slot, its reference (to verify), buffer, type and cache slot.
    private readonly read_references: Uint8Array;
    private readonly read_offsets: Float64Array;
    private readonly read_types: Uint8Array;
    private readonly read_cache_slots: Int32Array;
    private readonly read_free: Int32Array;
    private read_free_count: number;
    // A lookup batch: keys in, statuses and values out, each lookup's step and level.
    readonly lookup_keys: Uint32Array;
    readonly lookup_values: Uint32Array;
    readonly lookup_status: Uint8Array;
    private readonly lookup_steps: Uint8Array;
    private readonly lookup_levels: Uint8Array;
    private readonly lookup_references: Uint8Array;
    private lookup_count = 0;
    /** The lookup waits for a shared cache slot, with none of its own I/O in flight. */
    private lookup_waiting = false;
    // A scan: the range and limit, the results, an iterator per source (newest first).
    readonly scan_keys: Uint32Array;
    readonly scan_values: Uint32Array;
    scan_count = 0;
    private scan_limit = 0;
    private readonly scan_key_max: Uint32Array;
    private readonly scan_mutable: MemoryTableIterator;
    private readonly scan_immutable: MemoryTableIterator;
    private readonly scan_levels: LevelIterator[];
    private readonly scan_sources: EntryIterator[];

    /**
     * The tree's buffers start at `memory_offset` in the device's memory: its own cache first,
     * unless `cache` is given (a forest's trees share one).
     */
    constructor(options: TreeOptions, device: BlockDevice, memory_offset: number,
        cache: BlockCache | null = null) {
        const block = device.block_size_bytes;
        const buffer_count = tree_buffer_count(options, block, cache !== null);
        assert(options.bar_beat_count >= 2 && options.bar_beat_count % 2 === 0);
        assert(options.level_count >= 1 && options.level_count <= 16);
        assert(options.lookup_count_max >= 1 && options.scan_count_max >= 1);
        assert(memory_offset % block === 0, 'lsm: the tree memory is block-aligned');
        assert(memory_offset + buffer_count * block <= device.memory.length);
        this.options = options;
        this.device = device;
        this.memory = device.memory;
        this.words = new Uint32Array(device.memory.buffer, device.memory.byteOffset,
            device.memory.length >>> 2);
        this.layout = new TableLayout(options.key_words, options.value_words, block,
            options.bar_entry_count_max);
        const levels = options.level_count;
        this.level_budgets = new Uint32Array(levels);
        assert(options.growth_factor >= 2 && options.bar_entry_count_max >= 1);
        const tables_max: number[] = [];
        for (let level = 0; level < levels; level++) {
            this.level_budgets[level] = level_table_budget(options.growth_factor, level);
            tables_max.push(level_tables_max(options.growth_factor, level, levels));
        }
        this.manifest = new Manifest(levels, options.key_words, tables_max);
        const slots = cache === null ? BlockCache.slot_count_for(options.cache_size_bytes, block) :
            0;
        this.cache = cache ?? new BlockCache(device.memory, memory_offset, slots, block);
        assert(this.cache.block_size_bytes === block);
        this.mutable = new MemoryTable(options.key_words, options.value_words,
            options.bar_entry_count_max);
        this.immutable = new MemoryTable(options.key_words, options.value_words,
            options.bar_entry_count_max);
        const scan_offset = memory_offset + slots * block;
        const jobs_offset = scan_offset + 2 * levels * block;
        this.jobs = this.jobs_make(jobs_offset, tables_max);
        // Lookups read one block each per round; scans one per level; jobs two per level.
        const reads_max = options.lookup_count_max + 3 * levels;
        assert(reads_max >= 4);
        this.read_references = new Uint8Array(reads_max * reference_size);
        this.read_offsets = new Float64Array(reads_max);
        this.read_types = new Uint8Array(reads_max);
        this.read_cache_slots = new Int32Array(reads_max);
        this.read_free = Int32Array.from({ length: reads_max }, (_, index) => index);
        this.read_free_count = reads_max;
        const lookups = options.lookup_count_max;
        this.lookup_keys = new Uint32Array(lookups * options.key_words);
        this.lookup_values = new Uint32Array(lookups * options.value_words);
        this.lookup_status = new Uint8Array(lookups);
        this.lookup_steps = new Uint8Array(lookups);
        this.lookup_levels = new Uint8Array(lookups);
        this.lookup_references = new Uint8Array(lookups * reference_size);
        this.scan_keys = new Uint32Array(options.scan_count_max * options.key_words);
        this.scan_values = new Uint32Array(options.scan_count_max * options.value_words);
        this.scan_key_max = new Uint32Array(options.key_words);
        this.scan_mutable = new MemoryTableIterator(this.mutable);
        this.scan_immutable = new MemoryTableIterator(this.immutable);
        this.scan_levels = [];
        for (let level = 0; level < levels; level++) {
            this.scan_levels.push(new LevelIterator(this.memory, this.words, this.layout,
                this.manifest, scan_offset + 2 * level * block,
                scan_offset + (2 * level + 1) * block));
        }
        this.scan_sources = [this.scan_mutable, this.scan_immutable, ...this.scan_levels];
        assert.equal(this.scan_sources.length, levels + 2);
        assert(jobs_offset + levels * CompactionJob.buffer_count * block <=
            memory_offset + buffer_count * block);
        device.target_set(this);
    }

    private jobs_make(jobs_offset: number, tables_max: readonly number[]): CompactionJob[] {
        const jobs: CompactionJob[] = [];
        const block = this.layout.block_size_bytes;
        for (let level = 0; level < this.options.level_count; level++) {
            // Job 0 merges the immutable table with any of level 0. Job L picks the table of
            // level L - 1 (over budget) that overlaps least: by pigeonhole it overlaps at most
            // tables_max(L) / budget(L - 1) + 1 tables of level L, and takes in at most two
            // small neighbours.
            const target_tables_max = level === 0 ? tables_max[0]! :
                Math.ceil(tables_max[level]! / this.level_budgets[level - 1]!) + 4;
            jobs.push(new CompactionJob({
                layout: this.layout, manifest: this.manifest, cluster: this.options.cluster,
                tree_id: this.options.tree_id, target_level: level, memory: this.memory,
                words: this.words,
                buffers_offset: jobs_offset + level * CompactionJob.buffer_count * block,
                immutable: this.immutable, target_tables_max,
            }));
        }
        assert(jobs.length === this.options.level_count);
        return jobs;
    }

    /** The mutable table: a forest's checkpoint writes it, and an open restores it. */
    get mutable_table(): MemoryTable {
        assert(this.operation !== operation_beat);
        return this.mutable;
    }

    /**
     * Whether the tree's state is its manifest and its mutable table only: idle at a bar's end,
     * where every job has installed and the immutable table is empty.
     */
    get checkpointable(): boolean {
        if (!this.idle || this.beat % this.options.bar_beat_count !== 0) return false;
        if (this.beat_refused) return false;
        for (const job of this.jobs) if (job.active) return false;
        return this.immutable.count === 0;
    }

    /** Puts an entry restored from a checkpoint back into the mutable table. */
    mutable_restore(words: Uint32Array, key_word: number, value_word: number,
        tombstone: boolean): void {
        assert(this.operation === operation_idle && this.beat === 0);
        this.mutable.put(words, key_word, words, value_word, tombstone);
    }

    get idle(): boolean {
        assert(this.operation !== operation_idle || this.io_in_flight === 0);
        return this.operation === operation_idle;
    }

    /** Puts left in this bar (the mutable table's free entries). */
    get bar_entries_free(): number {
        assert(this.mutable.count <= this.mutable.entry_count_max);
        return this.mutable.entry_count_max - this.mutable.count;
    }

    put(key: Uint32Array, key_word: number, value: Uint32Array, value_word: number): void {
        assert(this.operation !== operation_scan, 'lsm: a put during a scan');
        assert(key_word + this.options.key_words <= key.length);
        this.mutable.put(key, key_word, value, value_word, false);
        this.statistics.entries_put += 1;
    }

    remove(key: Uint32Array, key_word: number): void {
        assert(this.operation !== operation_scan, 'lsm: a remove during a scan');
        assert(key_word + this.options.key_words <= key.length);
        this.mutable.put(key, key_word, key, key_word, true);
        this.statistics.entries_put += 1;
    }

    // ---- I/O: reads verified on completion, rounds resumed when all I/O has completed.

    private read_submit(reference: Uint8Array, reference_offset: number, memory_offset: number,
        type: number, cache_slot: number): void {
        assert(this.read_free_count > 0, 'lsm: too many reads in flight');
        this.read_free_count -= 1;
        const slot = this.read_free[this.read_free_count]!;
        reference_copy(this.read_references, slot * reference_size, reference, reference_offset);
        this.read_offsets[slot] = memory_offset;
        this.read_types[slot] = type;
        this.read_cache_slots[slot] = cache_slot;
        this.io_in_flight += 1;
        this.statistics.blocks_read += 1;
        const address = reference_address(reference, reference_offset);
        assert(address >= 1, 'lsm: a read of no block');
        assert(memory_offset % 4 === 0);
        this.device.read(slot, address, memory_offset, this.layout.block_size_bytes);
    }

    block_read_complete(slot: number, result: number): void {
        assert(this.io_in_flight > 0 && slot >= 0 && slot < this.read_offsets.length);
        const offset = this.read_offsets[slot]!;
        const type = this.read_types[slot]!;
        const address = reference_address(this.read_references, slot * reference_size);
        const cache_slot = this.read_cache_slots[slot]!;
        let reason: string | null = null;
        if (result !== this.layout.block_size_bytes) reason = `read failed (${result})`;
        else if (!block_verify(this.memory, offset, this.read_references, slot * reference_size,
            type) || !lsm_block_matches(this.memory, offset, this.layout, this.options.tree_id,
            type)) reason = 'not the block its parent names';
        if (reason !== null) {
            // The first refusal of the operation is the one reported; the block is not cached.
            this.refusal ??= new BlockRefusal(address, this.options.tree_id, reason);
            if (cache_slot >= 0) this.cache.fill_abandon(cache_slot);
        } else if (cache_slot >= 0) this.cache.fill_complete(cache_slot);
        this.read_free[this.read_free_count] = slot;
        this.read_free_count += 1;
        assert(this.read_free_count <= this.read_free.length);
        this.io_complete();
    }

    block_acquire(): number {
        assert(this.operation === operation_beat, 'lsm: only compaction writes blocks');
        const address = this.device.acquire();
        assert(address >= 1, 'lsm: the grid is full');
        return address;
    }

    block_write(address: number, memory_offset: number): void {
        assert(this.operation === operation_beat);
        assert(address >= 1 && memory_offset % this.layout.block_size_bytes === 0);
        this.io_in_flight += 1;
        this.statistics.blocks_written += 1;
        this.device.write(0, address, memory_offset, this.layout.block_size_bytes);
    }

    block_write_complete(tag: number, result: number): void {
        assert(tag === 0 && this.io_in_flight > 0);
        // A write that fails leaves the grid without a block a table names: fatal for now
        // (the replica's storage fault handling takes over when the forest is wired in).
        assert(result === this.layout.block_size_bytes, `lsm: a block write failed (${result})`);
        this.io_complete();
    }

    private io_complete(): void {
        this.io_in_flight -= 1;
        assert(this.io_in_flight >= 0);
        if (this.io_in_flight > 0) return;
        this.statistics.rounds += 1;
        if (this.refusal !== null) {
            this.refused_end();
            return;
        }
        if (this.operation === operation_lookup) this.lookup_round();
        else if (this.operation === operation_scan) this.scan_round();
        else if (this.operation === operation_beat) this.beat_round();
        else assert.fail('lsm: I/O completed with no operation');
    }

    /** Ends the operation a refusal interrupted; what it read so far is dropped. */
    private refused_end(): void {
        assert(this.refusal !== null && this.io_in_flight === 0);
        if (this.operation === operation_beat) this.beat_refused = true;
        for (const iterator of this.scan_levels) iterator.loading = false;
        this.operation = operation_idle;
    }

    /**
     * A compaction's block is always read from disk, never copied from the cache: what the cache
     * holds depends on a replica's lookups, and a job that found its block cached would go on,
     * and acquire its next address, in a round where on another replica it waits for a read,
     * so the jobs' acquisitions would interleave differently and the grids differ.
     */
    iterator_fill(iterator: LevelIterator): boolean {
        return this.iterator_load(iterator, false);
    }

    /**
     * The iterator's block is copied from the cache (when `cached` and there) or being read:
     * true if a read is issued.
     */
    private iterator_load(iterator: LevelIterator, cached: boolean): boolean {
        assert(!iterator.loading);
        // An index block then a data block: at most two loads before the iterator is ready.
        for (let load = 0; load < 3; load++) {
            const state = iterator.state;
            if (state !== iterator_need_index && state !== iterator_need_data) return false;
            const reference = iterator.pending_reference_bytes();
            const reference_offset = iterator.pending_reference_offset();
            const address = reference_address(reference, reference_offset);
            const target = iterator.pending_buffer_offset();
            const type = state === iterator_need_index ? block_type_index : block_type_data;
            const slot = cached ? this.cache.peek(address) : -1;
            if (slot === -1) {
                this.read_submit(reference, reference_offset, target, type, -1);
                iterator.loading = true;
                return true;
            }
            const source = this.cache.slot_offset(slot);
            // Pair assertion: a cached block verified when read; it is still the one named.
            assert(u128_equal(this.memory, source + frame.checksum, reference, reference_offset));
            this.memory.copyWithin(target, source, source + this.layout.block_size_bytes);
            iterator.loaded(address);
        }
        assert.fail('lsm: an iterator needed more than two blocks');
    }

    /** After a round: every iterator whose read was in flight has its block. */
    private iterators_loaded(iterators: readonly LevelIterator[]): void {
        for (const iterator of iterators) {
            if (!iterator.loading) continue;
            assert(this.io_in_flight === 0, 'lsm: a block used before its read completed');
            iterator.loading = false;
            const reference = iterator.pending_reference_bytes();
            iterator.loaded(reference_address(reference, iterator.pending_reference_offset()));
        }
    }

    // ---- Point lookups: a batch, every lookup advancing level by level, reads in rounds.

    /** Looks up `count` keys (keys[key_word...]); the results are ready when the tree is idle. */
    lookups_start(keys: Uint32Array, key_word: number, count: number): void {
        assert(this.operation === operation_idle && this.io_in_flight === 0);
        this.refusal = null;
        assert(count >= 1 && count <= this.options.lookup_count_max);
        assert(!this.lookup_waiting);
        const key_words = this.options.key_words;
        this.lookup_count = count;
        this.lookup_keys.set(keys.subarray(key_word, key_word + count * key_words));
        this.lookup_values.fill(0);
        for (let index = 0; index < count; index++) {
            this.lookup_status[index] = lookup_pending;
            this.lookup_steps[index] = step_table;
            this.lookup_levels[index] = 0;
            if (this.lookup_memory(index, this.mutable)) continue;
            if (this.immutable.count > 0) this.lookup_memory(index, this.immutable);
        }
        this.operation = operation_lookup;
        this.lookup_round();
        assert(this.operation === operation_idle || this.io_in_flight > 0 ||
            this.lookup_waiting);
    }

    private lookup_memory(index: number, table: MemoryTable): boolean {
        assert(index < this.lookup_count);
        const entry = table.find(this.lookup_keys, index * this.options.key_words);
        if (entry === -1) return false;
        assert(entry < table.count);
        this.lookup_steps[index] = step_done;
        if (table.tombstones[entry] === 1) {
            this.lookup_status[index] = lookup_absent;
            return true;
        }
        const value_words = this.options.value_words;
        // A loop, not a subarray: nothing allocated per lookup.
        const values = table.values, source = entry * value_words, target = index * value_words;
        for (let word = 0; word < value_words; word++) {
            this.lookup_values[target + word] = values[source + word]!;
        }
        this.lookup_status[index] = lookup_found;
        return true;
    }

    private lookup_round(): void {
        assert(this.operation === operation_lookup && this.io_in_flight === 0);
        let reading = false;
        for (let index = 0; index < this.lookup_count; index++) {
            if (this.lookup_steps[index] === step_done) continue;
            if (this.lookup_advance(index)) reading = true;
        }
        if (reading) {
            assert(this.io_in_flight > 0);
            this.device.submit();
            return;
        }
        if (this.lookups_blocked()) return;
        // A lookup waits only on a read in flight; with none left, every lookup has ended.
        for (let index = 0; index < this.lookup_count; index++) {
            assert(this.lookup_steps[index] === step_done);
            assert(this.lookup_status[index] !== lookup_pending);
        }
        this.operation = operation_idle;
    }

    /**
     * Whether lookups remain that issued nothing because their cache set is full of reads: in a
     * forest the other trees' lookups share the cache, so every way of a set can be theirs, with
     * none of this tree's I/O in flight to resume it. The lookup then waits, idle of I/O, until
     * the forest calls `lookup_retry` on a completion (a read into a shared slot has landed).
     */
    private lookups_blocked(): boolean {
        for (let index = 0; index < this.lookup_count; index++) {
            if (this.lookup_steps[index] === step_done) continue;
            assert(this.cache.reading_count > 0, 'lsm: a lookup waits on no read');
            this.lookup_waiting = true;
            return true;
        }
        return false;
    }

    /** A lookup blocked on the shared cache (see lookups_blocked) tries its round again. */
    lookup_retry(): void {
        if (!this.lookup_waiting) return;
        assert(this.operation === operation_lookup && this.io_in_flight === 0);
        this.lookup_waiting = false;
        this.lookup_round();
    }

    /** Advances one lookup as far as the cache allows: true if it issued a read. */
    private lookup_advance(index: number): boolean {
        const reference_offset = index * reference_size;
        const levels = this.options.level_count;
        assert(this.lookup_status[index] === lookup_pending);
        for (let hop = 0; hop < 3 * levels + 1; hop++) {
            const step = this.lookup_steps[index]!;
            if (step === step_table) {
                this.lookup_table(index);
                if (this.lookup_steps[index] === step_done) return false;
                continue;
            }
            assert(step === step_index || step === step_data);
            const address = reference_address(this.lookup_references, reference_offset);
            const slot = this.cache.lookup(address);
            if (slot === -1) {
                // Another lookup's read of this block, or a set full of reads: the next round.
                if (this.cache.reading(address)) return false;
                const reserved = this.cache.reserve(address);
                if (reserved === -1) return false;
                this.read_submit(this.lookup_references, reference_offset,
                    this.cache.slot_offset(reserved), step === step_index ? block_type_index :
                    block_type_data, reserved);
                return true;
            }
            const offset = this.cache.slot_offset(slot);
            assert(u128_equal(this.memory, offset + frame.checksum, this.lookup_references,
                reference_offset), 'lsm: the cache holds another block at this address');
            if (step === step_index) this.lookup_index_block(index, offset);
            else this.lookup_data_block(index, offset);
            if (this.lookup_steps[index] === step_done) return false;
        }
        assert.fail('lsm: a lookup did not end within its hops');
    }

    /** Finds the level's table that may hold the key, or moves to the next level. */
    private lookup_table(index: number): void {
        assert(this.lookup_steps[index] === step_table);
        const key_word = index * this.options.key_words;
        for (let level = this.lookup_levels[index]!; level < this.options.level_count; level++) {
            const position = this.manifest.find(level, this.lookup_keys, key_word);
            if (position === -1) continue;
            this.lookup_levels[index] = level;
            reference_copy(this.lookup_references, index * reference_size,
                this.manifest.references[level]!, position * reference_size);
            this.lookup_steps[index] = step_index;
            return;
        }
        this.lookup_levels[index] = this.options.level_count;
        this.lookup_steps[index] = step_done;
        this.lookup_status[index] = lookup_absent;
    }

    private lookup_next_level(index: number): void {
        assert(this.lookup_levels[index]! < this.options.level_count);
        this.lookup_levels[index]! += 1;
        this.lookup_steps[index] = step_table;
    }

    private lookup_index_block(index: number, offset: number): void {
        const layout = this.layout;
        const key_word = index * layout.key_words;
        const count = block_count(this.memory, offset);
        assert(count >= 1 && count <= layout.data_block_count_max);
        const position = keys_lower_bound(this.words, (offset + layout.index_key_max_offset) / 4,
            count, layout.key_words, this.lookup_keys, key_word);
        if (position === count || key_compare(this.lookup_keys, key_word, this.words,
            (offset + layout.data_key_offset(position)) / 4, layout.key_words) < 0) {
            this.lookup_next_level(index);
            return;
        }
        reference_copy(this.lookup_references, index * reference_size, this.memory,
            offset + layout.index_reference_offset(position));
        this.lookup_steps[index] = step_data;
    }

    private lookup_data_block(index: number, offset: number): void {
        const layout = this.layout;
        const key_word = index * layout.key_words;
        const count = block_count(this.memory, offset);
        assert(count >= 1 && count <= layout.data_entry_count_max);
        const position = keys_lower_bound(this.words, (offset + layout.data_key_offset(0)) / 4,
            count, layout.key_words, this.lookup_keys, key_word);
        if (position === count || key_compare(this.lookup_keys, key_word, this.words,
            (offset + layout.data_key_offset(position)) / 4, layout.key_words) !== 0) {
            this.lookup_next_level(index);
            return;
        }
        this.lookup_steps[index] = step_done;
        const bits = this.words[(offset + layout.data_tombstones_offset) / 4 + (position >>> 5)]!;
        if (((bits >>> (position & 31)) & 1) === 1) {
            this.lookup_status[index] = lookup_absent;
            return;
        }
        const value_word = (offset + layout.data_value_offset(position)) / 4;
        const value_words = layout.value_words;
        for (let word = 0; word < value_words; word++) {
            this.lookup_values[index * value_words + word] = this.words[value_word + word]!;
        }
        this.lookup_status[index] = lookup_found;
    }

    // ---- Range scans: a merge of every source, newest first on equal keys.

    /** Scans keys in [key_min, key_max], at most `limit` live entries, into scan_keys/values. */
    scan_start(key_min: Uint32Array, key_min_word: number, key_max: Uint32Array,
        key_max_word: number, limit: number): void {
        assert(this.operation === operation_idle && this.io_in_flight === 0);
        assert(limit >= 1 && limit <= this.options.scan_count_max);
        this.refusal = null;
        const key_words = this.options.key_words;
        assert(key_compare(key_min, key_min_word, key_max, key_max_word, key_words) <= 0);
        this.scan_count = 0;
        this.scan_limit = limit;
        key_copy(this.scan_key_max, 0, key_max, key_max_word, key_words);
        this.mutable.order_build();
        this.scan_mutable.start(this.mutable, this.mutable.lower_bound(key_min, key_min_word));
        this.scan_immutable.start(this.immutable,
            this.immutable.lower_bound(key_min, key_min_word));
        for (let level = 0; level < this.options.level_count; level++) {
            const position = this.manifest.lower_bound(level, key_min, key_min_word);
            this.scan_levels[level]!.start(level, position, this.manifest.counts[level]!,
                key_min, key_min_word, null);
        }
        this.operation = operation_scan;
        this.scan_round();
        assert(this.operation === operation_idle || this.io_in_flight > 0);
    }

    private scan_round(): void {
        assert(this.operation === operation_scan && this.io_in_flight === 0);
        this.iterators_loaded(this.scan_levels);
        // Each pass either issues reads, or consumes at least one block's entries, or ends.
        let blocks = 2;
        for (let level = 0; level < this.options.level_count; level++) {
            for (let table = 0; table < this.manifest.counts[level]!; table++) {
                blocks += this.manifest.data_block_count[level]![table]! + 1;
            }
        }
        for (let pass = 0; pass < blocks; pass++) {
            let reading = false;
            let filled = true;
            for (const iterator of this.scan_levels) {
                if (iterator.state !== iterator_need_index &&
                    iterator.state !== iterator_need_data) continue;
                if (this.iterator_load(iterator, true)) reading = true;
                else if (iterator.state !== iterator_ready &&
                    iterator.state !== iterator_done) filled = false;
            }
            if (reading) {
                this.device.submit();
                return;
            }
            if (!filled) continue;
            if (this.scan_merge()) {
                assert(this.scan_count <= this.scan_limit);
                this.operation = operation_idle;
                return;
            }
        }
        assert.fail('lsm: a scan did not end within its blocks');
    }

    /** Emits entries until a level iterator needs a block (false) or the scan ends (true). */
    private scan_merge(): boolean {
        const key_words = this.options.key_words;
        const value_words = this.options.value_words;
        const sources = this.scan_sources;
        assert(this.scan_count < this.scan_limit);
        const entries_max = 2 * this.options.bar_entry_count_max +
            this.options.level_count * this.layout.data_entry_count_max + 1;
        for (let emitted = 0; emitted < entries_max; emitted++) {
            const winner = this.scan_minimum();
            if (winner === null) return true;
            const key_word = this.scan_count * key_words;
            // Advancing moves the winner to its next entry: what it held is read first.
            const tombstone = winner.tombstone;
            if (!tombstone) {
                key_copy(this.scan_keys, key_word, winner.keys, winner.key_word, key_words);
                const value_word = this.scan_count * value_words;
                for (let word = 0; word < value_words; word++) {
                    this.scan_values[value_word + word] = winner.values[winner.value_word + word]!;
                }
            } else {
                // The key is kept only to skip its older entries: the next one overwrites it.
                key_copy(this.scan_keys, key_word, winner.keys, winner.key_word, key_words);
            }
            let needs_block = false;
            for (const source of sources) {
                if (source.state !== iterator_ready) continue;
                if (key_compare(source.keys, source.key_word, this.scan_keys, key_word,
                    key_words) !== 0) continue;
                source.advance();
                if (source.state === iterator_need_data || source.state === iterator_need_index) {
                    needs_block = true;
                }
            }
            if (!tombstone) this.scan_count += 1;
            if (this.scan_count === this.scan_limit) return true;
            if (needs_block) return false;
        }
        assert.fail('lsm: a scan merge did not reach a block boundary');
    }

    /** The newest source at the smallest key within the range; sources past it stop. */
    private scan_minimum(): EntryIterator | null {
        const key_words = this.options.key_words;
        assert(this.scan_sources.length === this.options.level_count + 2);
        let minimum: EntryIterator | null = null;
        for (const source of this.scan_sources) {
            if (source.state !== iterator_ready) continue;
            if (key_compare(source.keys, source.key_word, this.scan_key_max, 0, key_words) > 0) {
                source.stop();
                continue;
            }
            if (minimum === null || key_compare(source.keys, source.key_word, minimum.keys,
                minimum.key_word, key_words) < 0) minimum = source;
        }
        for (const source of this.scan_sources) {
            // Every source is positioned before anything is emitted.
            assert(source.state === iterator_ready || source.state === iterator_done);
        }
        return minimum;
    }

    // ---- Compaction, paced by beats and bars.

    /** Runs one beat of compaction (call once per op); ends when the tree is idle. */
    compact_beat(): void {
        assert(this.operation === operation_idle && this.io_in_flight === 0);
        assert(!this.beat_refused, 'lsm: a beat of a tree whose compaction was refused');
        this.refusal = null;
        const half = this.options.bar_beat_count / 2;
        const phase = this.beat % this.options.bar_beat_count;
        if (phase === 0) this.bar_start();
        if (phase === half) this.half_bar_start();
        for (const job of this.jobs) {
            // A job installed in an earlier beat has nothing to count in this one.
            job.beat_consumed = 0;
            if (job.active) job.beat_start();
        }
        this.operation = operation_beat;
        this.beat_round();
        assert(this.operation === operation_idle || this.io_in_flight > 0);
    }

    private bar_start(): void {
        for (const job of this.jobs) assert(!job.active, 'lsm: a compaction outlived its bar');
        assert(this.immutable.count === 0, 'lsm: the immutable table was not compacted');
        if (this.mutable.count > 0) {
            const table = this.immutable;
            this.immutable = this.mutable;
            this.mutable = table;
            this.immutable.sort();
            assert(this.mutable.count === 0 && this.immutable.count > 0);
        }
        this.jobs_start(0);
    }

    private half_bar_start(): void {
        for (const job of this.jobs) assert(!job.active, 'lsm: a compaction outlived its half');
        if (this.immutable.count > 0) {
            this.jobs[0]!.start_immutable(this.immutable, this.options.bar_beat_count / 2,
                this.beat);
        }
        this.jobs_start(1);
    }

    /** Starts the compactions out of the levels of this parity that are over budget. */
    private jobs_start(parity: number): void {
        assert(parity === 0 || parity === 1);
        const half = this.options.bar_beat_count / 2;
        for (let level = parity; level + 1 < this.options.level_count; level += 2) {
            if (this.manifest.counts[level]! <= this.level_budgets[level]!) continue;
            const position = this.table_least_overlap(level);
            assert(position < this.manifest.counts[level]!);
            if (!this.jobs[level + 1]!.start_table(position, half, this.beat)) {
                this.table_move(level, position);
            }
        }
    }

    /** The table of `level` that overlaps the fewest tables of the next (the first on ties). */
    private table_least_overlap(level: number): number {
        const manifest = this.manifest;
        const key_words = this.options.key_words;
        assert(manifest.counts[level]! >= 1 && level + 1 < manifest.level_count);
        let best = 0;
        let best_overlap = Number.MAX_SAFE_INTEGER;
        for (let position = 0; position < manifest.counts[level]!; position++) {
            const start = manifest.lower_bound(level + 1, manifest.key_min[level]!,
                position * key_words);
            const overlap = manifest.overlap_count(level + 1, start, manifest.key_max[level]!,
                position * key_words);
            if (overlap < best_overlap) {
                best = position;
                best_overlap = overlap;
            }
        }
        assert(best_overlap < Number.MAX_SAFE_INTEGER);
        return best;
    }

    private readonly move_keys = new Uint32Array(16);
    private readonly move_reference = new Uint8Array(reference_size);

    /** A table that overlaps nothing below changes level: no block is read or written. */
    private table_move(level: number, position: number): void {
        const manifest = this.manifest;
        const key_words = this.options.key_words;
        assert(key_words <= 8 && position < manifest.counts[level]!);
        key_copy(this.move_keys, 0, manifest.key_min[level]!, position * key_words, key_words);
        key_copy(this.move_keys, 8, manifest.key_max[level]!, position * key_words, key_words);
        reference_copy(this.move_reference, 0, manifest.references[level]!,
            position * reference_size);
        const blocks = manifest.data_block_count[level]![position]!;
        const entries = manifest.entry_count[level]![position]!;
        const snapshot = manifest.snapshot_min[level]![position]!;
        this.manifest_remove(level, position);
        const tables = manifest.table_count_total();
        const moved = manifest.insert(level + 1, this.move_keys, 0, this.move_keys, 8,
            this.move_reference, 0, snapshot, blocks, entries);
        this.manifest_log?.record(event_insert, this.options.tree_id, manifest, level + 1, moved);
        assert.equal(manifest.table_count_total(), tables + 1);
        this.statistics.tables_moved += 1;
    }

    private beat_round(): void {
        assert(this.operation === operation_beat && this.io_in_flight === 0);
        let io = false;
        // Every read of the last round has completed: the blocks are handed over first.
        for (const job of this.jobs) {
            if (job.active) this.iterators_loaded([job.source_iterator, job.target_iterator]);
        }
        // Jobs run in level order, so blocks are acquired in the same order on every replica.
        for (const job of this.jobs) {
            if (!job.active) continue;
            const step = job.step(this);
            if (step === step_io) io = true;
            if (step === step_installable) this.install(job);
        }
        if (io) {
            assert(this.io_in_flight > 0);
            this.device.submit();
            return;
        }
        const bar = this.options.bar_beat_count;
        const phase = this.beat % bar;
        if (phase === bar / 2 - 1 || phase === bar - 1) {
            for (const job of this.jobs) assert(!job.active, 'lsm: a compaction missed its pace');
        }
        let consumed = 0;
        for (const job of this.jobs) consumed += job.beat_consumed;
        this.statistics.beat_entries_last = consumed;
        this.statistics.beat_entries_max = Math.max(this.statistics.beat_entries_max, consumed);
        this.beat += 1;
        this.operation = operation_idle;
    }

    /** Replaces the job's inputs by its outputs in the manifest, then frees the inputs. */
    private install(job: CompactionJob): void {
        const manifest = this.manifest;
        const target = job.target_level;
        const key_words = this.options.key_words;
        // Other jobs may have I/O in flight: they touch other levels and other blocks.
        assert(job.active && this.operation === operation_beat);
        let blocks = 0;
        for (let index = job.target_count - 1; index >= 0; index--) {
            blocks += manifest.data_block_count[target]![job.target_start + index]! + 1;
            this.manifest_remove(target, job.target_start + index);
        }
        if (job.source_level >= 0) {
            blocks += manifest.data_block_count[job.source_level]![job.source_position]! + 1;
            this.manifest_remove(job.source_level, job.source_position);
        } else {
            this.immutable.clear();
        }
        const outputs = job.outputs;
        const tables = manifest.counts[target]!;
        for (let index = 0; index < outputs.count; index++) {
            const position = manifest.insert(target, outputs.key_min, index * key_words,
                outputs.key_max, index * key_words, outputs.references, index * reference_size,
                this.beat, outputs.data_block_count[index]!, outputs.entry_count[index]!);
            this.manifest_log?.record(event_insert, this.options.tree_id, manifest, target,
                position);
        }
        assert.equal(manifest.counts[target], tables + outputs.count);
        const source_count = job.source_level >= 0 ? job.source_iterator.release_count : 0;
        const target_count = job.target_iterator.release_count;
        assert.equal(source_count + target_count, blocks, 'lsm: a job read each input once');
        this.release(job.source_releases, source_count);
        this.release(job.target_releases, target_count);
        this.statistics.entries_written += job.entries_written;
        job.installed();
    }

    /** Removes a table from the manifest, recorded for the next checkpoint first. */
    private manifest_remove(level: number, position: number): void {
        assert(position < this.manifest.counts[level]!);
        this.manifest_log?.record(event_remove, this.options.tree_id, this.manifest, level,
            position);
        this.manifest.remove(level, position);
    }

    /**
     * Releases consumed blocks: out of the cache now (no lookup may hit them), reusable only once
     * the checkpoint that no longer names them is durable (the device defers the free).
     */
    private release(addresses: Uint32Array, count: number): void {
        assert(count <= addresses.length);
        for (let index = 0; index < count; index++) {
            const address = addresses[index]!;
            assert(address >= 1);
            this.cache.remove(address);
            this.device.release(address);
        }
    }

    /** Tables in each level (tests and reports). */
    level_table_counts(): number[] {
        assert(this.manifest.counts.length === this.options.level_count);
        return Array.from(this.manifest.counts);
    }
}
