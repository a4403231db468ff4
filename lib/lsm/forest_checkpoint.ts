// A forest's checkpoint: what a restart needs to open the forest without reading its tables.
//
// It is a root block, whose reference (checksum, address) the superblock carries, naming:
//  - the manifest log (manifest_log.ts): the newest log block (each names the one before it) and
//    the log's block count and newest sequence. A checkpoint appends only the manifest changes
//    since the last one, and compacts a few of the log's oldest blocks (so the log stays within
//    about twice what its live tables need);
//  - the free set: a bitset of the acquired blocks, in as many blocks as the grid's size needs
//    (fixed by the grid, not by the data). Blocks released since the last checkpoint are encoded
//    free: once this checkpoint is durable nothing names them. The free set's own blocks and the
//    root are acquired after the encoding and marked by the open;
//  - each tree's mutable table, written as a table (an index block and data blocks) in the order
//    of its puts (block copies, no sort; the open puts them again in that order): at a bar's
//    end it holds the bar's puts, which are in no level yet.
// Every block of a checkpoint is written in one round, from its own buffer. The blocks the
// previous checkpoint wrote (its root, free set, mutable tables, and the log blocks compacted
// away) are released now, and so freed only once this checkpoint is durable.
//
// The open reads the root, the free set (in one round), walks the log from its newest block to
// its oldest (one block per round, to learn every block's reference), replays it from its oldest
// block (a round per batch of blocks), then reads the mutable tables back. Blocks read on open:
// 1 + free set blocks + 2 × log blocks + mutable table blocks, whatever the size of the data.
import assert from 'node:assert/strict';

import {
    block_seal, block_verify, BlockType, reference_address, reference_copy, reference_size,
    reference_write,
} from '../vsr/grid';
import { u32_read, u32_write, u64_read, u64_write } from '../vsr/prepare_header';
import { header_size } from '../storage/zones';
import { offsets } from '../vsr/header_layout';
import type { BlockDevice } from './block_device';
import { CompactionIo, TableWriter } from './compaction';
import { MemoryTableIterator, iterator_ready } from './iterator';
import {
    event_apply, event_find, event_insert, event_kind, event_level, event_tree_id,
    event_valid, manifest_event_size, ManifestLog,
} from './manifest_log';
import {
    block_count, block_type_data, block_type_index, lsm_block_matches, TableLayout,
} from './table_format';
import { BlockRefusal } from './tree';
import type { Tree } from './tree';

export interface CheckpointOptions {
    /** Manifest changes (table inserts and removes, all trees) between two checkpoints. */
    manifest_events_max: number;
    /** The most blocks the manifest log may span. */
    manifest_log_blocks_max: number;
}

// Root body: beat u64 | tree count u32 | free set blocks u32 | log blocks u32 | grid blocks u32
// | log newest sequence u64 | log newest reference [32] | per tree: tree id u32, mutable entry
// count u32, mutable table index reference [32] | free set block references [32 each].
const root_beat = header_size;
const root_tree_count = header_size + 8;
const root_free_set_count = header_size + 12;
const root_log_count = header_size + 16;
const root_grid_block_count = header_size + 20;
const root_log_sequence = header_size + 24;
const root_log_reference = header_size + 32;
const root_trees = header_size + 64;
const root_tree_size = 8 + reference_size;
// Log block body: the older block's reference, then events; the header's metadata holds the
// event count (segment) and the block's sequence (chunk).
const log_previous = header_size;
const log_events = header_size + reference_size;
const o_event_count = offsets.block.metadata;
const o_sequence = offsets.block.metadata + 4;

export function log_events_per_block(block_size_bytes: number): number {
    const count = Math.floor((block_size_bytes - log_events) / manifest_event_size);
    assert(count >= 2, 'lsm: a manifest log block must hold at least two events');
    return count;
}

/** How many blocks (and buffers) a checkpoint of these trees on this grid may write. */
export class CheckpointGeometry {
    readonly events_per_block: number;
    /** Oldest log blocks compacted per checkpoint: more than a checkpoint appends. */
    readonly compact_blocks_max: number;
    readonly log_events_max: number;
    readonly log_blocks_new_max: number;
    readonly free_set_block_count: number;
    /** Per tree: its mutable table's blocks (index + data) and where its buffers start. */
    readonly memory_blocks: number[];
    readonly memory_buffers_first: number[];
    readonly buffer_count: number;

    constructor(trees: readonly { key_words: number; value_words: number;
        bar_entry_count_max: number }[], block_size_bytes: number, grid_block_count: number,
    options: CheckpointOptions) {
        assert(options.manifest_events_max >= 1 && options.manifest_log_blocks_max >= 2);
        this.events_per_block = log_events_per_block(block_size_bytes);
        const appended = Math.ceil(options.manifest_events_max / this.events_per_block);
        this.compact_blocks_max = appended + 2;
        this.log_events_max = options.manifest_events_max +
            this.compact_blocks_max * this.events_per_block;
        this.log_blocks_new_max = Math.ceil(this.log_events_max / this.events_per_block);
        const payload = block_size_bytes - header_size;
        this.free_set_block_count = Math.ceil(Math.ceil((grid_block_count + 1) / 8) / payload);
        const first = 1 + this.free_set_block_count + this.log_blocks_new_max;
        let buffers = first;
        this.memory_blocks = [];
        this.memory_buffers_first = [];
        for (const tree of trees) {
            const layout = new TableLayout(tree.key_words, tree.value_words, block_size_bytes,
                tree.bar_entry_count_max);
            this.memory_buffers_first.push(buffers);
            this.memory_blocks.push(layout.data_block_count_max + 1);
            buffers += layout.data_block_count_max + 1;
        }
        this.buffer_count = buffers;
        assert(this.log_blocks_new_max >= 1 && this.free_set_block_count >= 1);
        assert(this.log_events_max >= options.manifest_events_max + this.events_per_block);
        assert(this.memory_blocks.length === trees.length);
        assert(root_trees + trees.length * root_tree_size +
            this.free_set_block_count * reference_size <= block_size_bytes,
        'lsm: the forest root cannot name every tree and free set block');
    }

    /** Buffer 0 is the root's; then the free set's; then the log's. */
    free_set_buffer(index: number): number {
        assert(index >= 0 && index < this.free_set_block_count);
        return 1 + index;
    }

    log_buffer(index: number): number {
        assert(index >= 0 && index < this.log_blocks_new_max);
        return 1 + this.free_set_block_count + index;
    }
}

const phase_idle = 0;
const phase_writing = 1;
const phase_written = 2;
const phase_open_root = 3;
const phase_open_free_set = 4;
const phase_open_log_walk = 5;
const phase_open_log_replay = 6;
const phase_open_memory_index = 7;
const phase_open_memory_data = 8;
/** The open was refused; reads of its last round are still landing. */
const phase_refused = 9;

export class ForestCheckpoint implements CompactionIo {
    readonly geometry: CheckpointGeometry;
    readonly log: ManifestLog;
    /** The last checkpoint's root (written, or opened); all zero before the first. */
    readonly root_reference = new Uint8Array(reference_size);
    /** The beat of the last checkpoint written or opened. */
    beat = 0;
    blocks_read = 0;
    blocks_written = 0;
    /** Why the open failed: a block of the checkpoint was refused (null: it did not). */
    refusal: BlockRefusal | null = null;
    /** Oldest log blocks dropped by the log's compaction, since startup. */
    log_blocks_compacted = 0;
    private readonly device: BlockDevice;
    private readonly trees: readonly Tree[];
    private readonly cluster: Uint8Array;
    private readonly memory: Uint8Array;
    private readonly words: Uint32Array;
    private readonly block: number;
    private readonly buffers_offset: number;
    private readonly tag_base: number;
    private readonly options: CheckpointOptions;
    /** The log's block references, a ring indexed by sequence; the newest and the count. */
    private readonly log_references: Uint8Array;
    private log_newest = 0;
    private log_count = 0;
    /** What the last checkpoint wrote that the next one releases. */
    private root_address = 0;
    private readonly free_set_addresses: Uint32Array;
    private readonly memory_addresses: Uint32Array;
    private memory_address_count = 0;
    private readonly memory_references: Uint8Array;
    private readonly memory_entry_counts: Uint32Array;
    private readonly writers: TableWriter[];
    private readonly iterators: MemoryTableIterator[];
    private phase = phase_idle;
    private io_in_flight = 0;
    // Reads of the current round: per read, the reference to verify against, buffer, type.
    private readonly read_references: Uint8Array;
    private readonly read_buffers: Uint32Array;
    private readonly read_types: Uint8Array;
    private readonly read_results: Int32Array;
    /** Per read: 1 + the index of the tree whose mutable table it reads, or 0. */
    private readonly read_trees: Uint8Array;
    private read_count = 0;
    /** The open's walk and replay: the next log sequence to read. */
    private open_sequence = 0;

    constructor(options: {
        device: BlockDevice; trees: readonly Tree[]; cluster: Uint8Array;
        buffers_offset: number; geometry: CheckpointGeometry; tag_base: number;
        checkpoint: CheckpointOptions;
    }) {
        const { device, trees, geometry } = options;
        assert(options.buffers_offset % device.block_size_bytes === 0);
        assert(options.tag_base > 0 && geometry.memory_blocks.length === trees.length);
        assert(options.checkpoint.manifest_log_blocks_max >= geometry.log_blocks_new_max);
        this.device = device;
        this.trees = trees;
        this.cluster = options.cluster;
        this.memory = device.memory;
        this.words = new Uint32Array(device.memory.buffer, device.memory.byteOffset,
            device.memory.length >>> 2);
        this.block = device.block_size_bytes;
        this.buffers_offset = options.buffers_offset;
        this.geometry = geometry;
        this.tag_base = options.tag_base;
        this.options = options.checkpoint;
        this.log = new ManifestLog(options.checkpoint.manifest_events_max,
            geometry.log_events_max);
        this.log_references = new Uint8Array(options.checkpoint.manifest_log_blocks_max *
            reference_size);
        this.free_set_addresses = new Uint32Array(geometry.free_set_block_count);
        let memory_blocks = 0;
        for (const count of geometry.memory_blocks) memory_blocks += count;
        this.memory_addresses = new Uint32Array(memory_blocks);
        this.memory_references = new Uint8Array(trees.length * reference_size);
        this.memory_entry_counts = new Uint32Array(trees.length);
        this.writers = [];
        this.iterators = [];
        for (let index = 0; index < trees.length; index++) {
            const tree = trees[index]!;
            const index_buffer = this.buffer(geometry.memory_buffers_first[index]!);
            this.writers.push(new TableWriter(tree.layout, this.memory, this.words,
                index_buffer + this.block, index_buffer));
            this.iterators.push(new MemoryTableIterator(tree.mutable_table));
            tree.manifest_log = this.log;
        }
        this.read_references = new Uint8Array(geometry.buffer_count * reference_size);
        this.read_buffers = new Uint32Array(geometry.buffer_count);
        this.read_types = new Uint8Array(geometry.buffer_count);
        this.read_results = new Int32Array(geometry.buffer_count);
        this.read_trees = new Uint8Array(geometry.buffer_count);
        assert(this.writers.length === trees.length);
    }

    get idle(): boolean {
        assert(this.io_in_flight === 0 || this.phase !== phase_idle);
        return this.io_in_flight === 0 && (this.phase === phase_idle ||
            this.phase === phase_written);
    }

    /** A checkpoint is written and waits for `durable()`. */
    get written(): boolean {
        return this.phase === phase_written && this.io_in_flight === 0;
    }

    /** The manifest log's blocks now (tests and reports). */
    get log_block_count(): number {
        return this.log_count;
    }

    private buffer(index: number): number {
        assert(index >= 0 && index < this.geometry.buffer_count);
        return this.buffers_offset + index * this.block;
    }

    // ---- Writing a checkpoint.

    /** Writes a checkpoint of every tree at `beat` (a bar's end); ends when `written`. */
    start(beat: number): void {
        assert(this.phase === phase_idle && this.io_in_flight === 0);
        for (const tree of this.trees) assert(tree.checkpointable, 'lsm: a checkpoint mid-bar');
        this.beat = beat;
        this.phase = phase_writing;
        this.log_compact();
        this.previous_release();
        this.log_blocks_write();
        this.memory_address_count = 0;
        for (let index = 0; index < this.trees.length; index++) this.memory_table_write(index);
        // Everything released so far is named by no state after this checkpoint.
        this.device.checkpoint_start();
        this.free_set_write();
        this.root_write();
        this.log.clear();
        assert(this.io_in_flight >= 2, 'lsm: a checkpoint writes at least its root and free set');
        assert(this.root_address >= 1 && this.log_count <= this.options.manifest_log_blocks_max);
        this.device.submit();
    }

    /** The superblock names this checkpoint's root: what it stopped naming becomes free. */
    durable(): number {
        assert(this.written, 'lsm: no checkpoint written to make durable');
        assert(this.root_address >= 1 && this.log.count === 0);
        this.phase = phase_idle;
        return this.device.checkpoint_durable();
    }

    /** Drops the log's oldest blocks, their live inserts appended again, while it is long. */
    private log_compact(): void {
        assert(this.phase === phase_writing && this.log.count <= this.log.changes_max);
        assert(this.log_count <= this.log_newest);
        let live = 0;
        for (const tree of this.trees) live += tree.manifest.table_count_total();
        const minimum = Math.ceil(live / this.geometry.events_per_block);
        // Each dropped block appends at most a block of events: room the geometry reserved.
        this.log.limit = this.log.events_max;
        let dropped = 0;
        for (; dropped < this.geometry.compact_blocks_max; dropped++) {
            if (this.log_count - dropped <= 2 * minimum + 1) break;
            const sequence = this.log_newest - this.log_count + 1 + dropped;
            assert(sequence >= 1 && sequence < this.log_newest, 'lsm: the newest log block stays');
            this.log_block_live_append(sequence);
            this.device.release(reference_address(this.log_references,
                this.log_slot(sequence)));
        }
        this.log_count -= dropped;
        this.log_blocks_compacted += dropped;
        assert(this.log_count >= 0 && this.log.count <= this.log.events_max);
    }

    private log_slot(sequence: number): number {
        assert(sequence >= 1 && sequence <= this.log_newest);
        return (sequence % this.options.manifest_log_blocks_max) * reference_size;
    }

    /** Appends an insert for every table whose insert is in the log block `sequence`. */
    private log_block_live_append(sequence: number): void {
        assert(sequence >= 1 && sequence <= this.log_newest);
        const count = this.log.count;
        for (const tree of this.trees) {
            const manifest = tree.manifest;
            for (let level = 0; level < manifest.level_count; level++) {
                const blocks = manifest.log_block[level]!;
                for (let position = 0; position < manifest.counts[level]!; position++) {
                    if (blocks[position] !== sequence) continue;
                    this.log.record(event_insert, tree.options.tree_id, manifest, level,
                        position);
                }
            }
        }
        // A block holds at most a block of inserts: what it appends again fits the room.
        assert(this.log.count - count <= this.geometry.events_per_block);
    }

    private previous_release(): void {
        assert(this.phase === phase_writing);
        assert(this.memory_address_count <= this.memory_addresses.length);
        if (this.root_address === 0) return;
        this.device.release(this.root_address);
        for (const address of this.free_set_addresses) this.device.release(address);
        for (let index = 0; index < this.memory_address_count; index++) {
            this.device.release(this.memory_addresses[index]!);
        }
        this.root_address = 0;
    }

    /** Packs the recorded events into new log blocks, each naming the block before it. */
    private log_blocks_write(): void {
        const per_block = this.geometry.events_per_block;
        const blocks = Math.ceil(this.log.count / per_block);
        assert(blocks <= this.geometry.log_blocks_new_max);
        assert(this.log_count + blocks <= this.options.manifest_log_blocks_max,
            'lsm: the manifest log is full');
        for (let index = 0; index < blocks; index++) {
            const offset = this.buffer(this.geometry.log_buffer(index));
            const first = index * per_block;
            const count = Math.min(per_block, this.log.count - first);
            assert(count >= 1 && count <= per_block);
            this.memory.fill(0, offset, offset + this.block);
            this.memory.set(this.log.bytes.subarray(first * manifest_event_size,
                (first + count) * manifest_event_size), offset + log_events);
            if (this.log_count > 0) {
                reference_copy(this.memory, offset + log_previous, this.log_references,
                    this.log_slot(this.log_newest));
            }
            const address = this.acquire();
            this.log_newest += 1;
            this.log_count += 1;
            block_seal(this.memory, offset, this.cluster, address, this.beat,
                BlockType.lsm_manifest_log, this.block, count, this.log_newest);
            reference_write(this.log_references, this.log_slot(this.log_newest), this.memory,
                offset);
            this.log_sequences_assign(first, count);
            this.write(address, offset);
        }
        assert(blocks === 0 || reference_address(this.log_references,
            this.log_slot(this.log_newest)) >= 1);
    }

    /** The tables inserted by events [first, first + count) now live in the newest block. */
    private log_sequences_assign(first: number, count: number): void {
        assert(first >= 0 && count >= 1 && first + count <= this.log.count);
        const bytes = this.log.bytes;
        for (let event = first; event < first + count; event++) {
            const offset = event * manifest_event_size;
            if (event_kind(bytes, offset) !== event_insert) continue;
            const tree = this.tree_find(event_tree_id(bytes, offset));
            assert(tree !== null);
            const position = event_find(this.log.words, bytes, offset, tree.manifest);
            // Inserted and removed again since the last checkpoint: nothing to point at.
            if (position === -1) continue;
            const level = event_level(bytes, offset);
            assert(tree.manifest.log_block[level]![position]! < this.log_newest);
            tree.manifest.log_block[level]![position] = this.log_newest;
        }
    }

    private tree_find(tree_id: number): Tree | null {
        assert(tree_id >= 0 && tree_id <= 0xffff);
        for (const tree of this.trees) if (tree.options.tree_id === tree_id) return tree;
        return null;
    }

    /** Writes the tree's mutable table as a table, every block in its own buffer. */
    private memory_table_write(index: number): void {
        const tree = this.trees[index]!;
        const table = tree.mutable_table;
        const reference = index * reference_size;
        assert(table.count <= tree.options.bar_entry_count_max);
        assert(tree.layout.table_entry_count_max >= table.count, 'lsm: a table holds a bar');
        this.memory_references.fill(0, reference, reference + reference_size);
        this.memory_entry_counts[index] = table.count;
        if (table.count === 0) return;
        const iterator = this.iterators[index]!;
        const writer = this.writers[index]!;
        const tree_id = tree.options.tree_id;
        let buffer = this.buffer(this.geometry.memory_buffers_first[index]! + 1);
        writer.data_buffer_move(buffer);
        // In the order of the puts: whole runs copied, no sort; an open puts them again in this
        // order, so the restored table is the same, entry for entry. (The index block's key
        // ranges are then a block's first and last keys, not its bounds: this table is only
        // ever restored, never looked up.)
        iterator.start_insertion_order(table);
        // A data block's worth of entries at a time: each pass fills the block or ends the table.
        let written = 0;
        for (let pass = 0; pass <= table.count && written < table.count; pass++) {
            assert(iterator.state === iterator_ready);
            if (writer.data_full) {
                writer.data_flush(this, this.cluster, tree_id, this.beat);
                buffer += this.block;
                writer.data_buffer_move(buffer);
            }
            const count = Math.min(writer.data_free, iterator.run_remaining);
            written += writer.append_run(iterator, count, false);
            iterator.skip(count);
        }
        assert(written === table.count && iterator.state !== iterator_ready);
        writer.data_flush(this, this.cluster, tree_id, this.beat);
        const address = writer.index_flush(this, this.cluster, tree_id, this.beat);
        reference_write(this.memory_references, reference, this.memory, writer.index_offset);
        assert.equal(reference_address(this.memory_references, reference), address);
    }

    /** The blocks of mutable tables: acquired through the table writer, released next time. */
    block_acquire(): number {
        assert(this.phase === phase_writing);
        assert(this.memory_address_count < this.memory_addresses.length);
        const address = this.acquire();
        this.memory_addresses[this.memory_address_count] = address;
        this.memory_address_count += 1;
        return address;
    }

    block_write(address: number, memory_offset: number): void {
        assert(this.device.free_set.is_acquired(address));
        this.write(address, memory_offset);
    }

    iterator_fill(): boolean {
        assert.fail('lsm: a checkpoint reads no table');
    }

    /** The bitset of acquired blocks, less those released (free once this is durable). */
    private free_set_write(): void {
        const free_set = this.device.free_set;
        const payload = this.block - header_size;
        const count = this.geometry.free_set_block_count;
        assert(count * payload * 8 > free_set.block_count, 'lsm: the free set fits its blocks');
        for (let index = 0; index < count; index++) {
            const offset = this.buffer(this.geometry.free_set_buffer(index));
            this.memory.fill(0, offset, offset + this.block);
        }
        for (let address = 1; address <= free_set.block_count; address++) {
            if (!free_set.is_acquired(address) || this.device.is_releasing(address)) continue;
            const byte = address >>> 3;
            const offset = this.buffer(this.geometry.free_set_buffer(Math.floor(byte / payload)));
            this.memory[offset + header_size + (byte % payload)]! |= 1 << (address & 7);
        }
        for (let index = 0; index < count; index++) {
            const offset = this.buffer(this.geometry.free_set_buffer(index));
            const address = this.acquire();
            // Acquired after the encoding: the free set does not name itself.
            assert(!this.device.is_releasing(address));
            this.free_set_addresses[index] = address;
            block_seal(this.memory, offset, this.cluster, address, this.beat,
                BlockType.lsm_free_set, this.block, index, count);
            this.write(address, offset);
        }
    }

    private root_write(): void {
        const offset = this.buffer(0);
        const memory = this.memory;
        memory.fill(0, offset, offset + this.block);
        u64_write(memory, offset + root_beat, this.beat);
        u32_write(memory, offset + root_tree_count, this.trees.length);
        u32_write(memory, offset + root_free_set_count, this.geometry.free_set_block_count);
        u32_write(memory, offset + root_log_count, this.log_count);
        u32_write(memory, offset + root_grid_block_count, this.device.free_set.block_count);
        u64_write(memory, offset + root_log_sequence, this.log_newest);
        if (this.log_count > 0) {
            reference_copy(memory, offset + root_log_reference, this.log_references,
                this.log_slot(this.log_newest));
        }
        for (let index = 0; index < this.trees.length; index++) {
            const tree_offset = offset + root_trees + index * root_tree_size;
            u32_write(memory, tree_offset, this.trees[index]!.options.tree_id);
            u32_write(memory, tree_offset + 4, this.memory_entry_counts[index]!);
            reference_copy(memory, tree_offset + 8, this.memory_references,
                index * reference_size);
        }
        const free_set_offset = offset + root_trees + this.trees.length * root_tree_size;
        for (let index = 0; index < this.geometry.free_set_block_count; index++) {
            reference_write(memory, free_set_offset + index * reference_size, memory,
                this.buffer(this.geometry.free_set_buffer(index)));
        }
        assert(free_set_offset + this.geometry.free_set_block_count * reference_size <=
            offset + this.block);
        this.root_address = this.acquire();
        block_seal(memory, offset, this.cluster, this.root_address, this.beat, BlockType.lsm_root,
            this.block, 0, 0);
        reference_write(this.root_reference, 0, memory, offset);
        this.write(this.root_address, offset);
    }

    private acquire(): number {
        assert(this.phase === phase_writing);
        const address = this.device.acquire();
        assert(address >= 1, 'lsm: the grid is full');
        return address;
    }

    private write(address: number, offset: number): void {
        assert(this.phase === phase_writing && offset % this.block === 0);
        this.io_in_flight += 1;
        this.blocks_written += 1;
        this.device.write(this.tag_base, address, offset, this.block);
    }

    block_write_complete(result: number): void {
        assert(result <= this.block);
        assert(this.phase === phase_writing && this.io_in_flight > 0);
        // As for a table's blocks: a failed write is fatal until storage faults are handled.
        assert(result === this.block, `lsm: a checkpoint block write failed (${result})`);
        this.io_in_flight -= 1;
        if (this.io_in_flight === 0) this.phase = phase_written;
    }

    // ---- Opening a checkpoint.

    /** Restores every tree's manifest and mutable table and the free set from a root. */
    open(reference: Uint8Array, reference_offset: number): void {
        assert(this.phase === phase_idle && this.io_in_flight === 0);
        assert(reference_offset >= 0 && reference_offset + reference_size <= reference.length);
        assert(this.root_address === 0 && this.device.free_set.acquired_count === 0,
            'lsm: a forest opens only on a fresh device');
        for (const tree of this.trees) assert(tree.manifest.table_count_total() === 0);
        reference_copy(this.root_reference, 0, reference, reference_offset);
        const address = reference_address(reference, reference_offset);
        assert(address >= 1 && address <= this.device.free_set.block_count);
        assert(this.device.free_set.mark(address));
        this.root_address = address;
        this.phase = phase_open_root;
        this.read(reference, reference_offset, this.buffer(0), BlockType.lsm_root);
        this.device.submit();
    }

    /** Reads a block; `tree_index` names the tree whose mutable table it is (else -1). */
    private read(reference: Uint8Array, reference_offset: number, offset: number,
        type: number, tree_index = -1): void {
        const slot = this.read_count;
        assert(tree_index >= -1 && tree_index < this.trees.length);
        assert((tree_index === -1) === (type !== block_type_index && type !== block_type_data));
        this.read_trees[slot] = tree_index + 1;
        assert(slot < this.read_buffers.length && this.phase >= phase_open_root);
        reference_copy(this.read_references, slot * reference_size, reference, reference_offset);
        this.read_buffers[slot] = offset;
        this.read_types[slot] = type;
        assert(offset % this.block === 0 && offset + this.block <= this.memory.length);
        this.read_results[slot] = 0;
        this.read_count += 1;
        this.io_in_flight += 1;
        this.blocks_read += 1;
        this.device.read(this.tag_base | (slot + 1), reference_address(reference,
            reference_offset), offset, this.block);
    }

    block_read_complete(slot: number, result: number): void {
        assert(slot >= 0 && slot < this.read_count && this.io_in_flight > 0);
        this.read_results[slot] = result;
        this.io_in_flight -= 1;
        if (this.io_in_flight > 0) return;
        const count = this.read_count;
        if (this.phase === phase_refused) {
            this.read_count = 0;
            this.phase = phase_idle;
            return;
        }
        try {
            // Every read of the round has landed: verify them all, then take the next step.
            for (let index = 0; index < count; index++) this.read_verify(index);
            this.read_count = 0;
            this.open_step(count);
        } catch (error) {
            // Bad bytes on disk end the open with the reason; they never crash the replica.
            if (!(error instanceof BlockRefusal)) throw error;
            this.refusal = error;
            if (this.io_in_flight === 0) this.read_count = 0;
            this.phase = this.io_in_flight > 0 ? phase_refused : phase_idle;
        }
        if (this.io_in_flight > 0) this.device.submit();
    }

    private open_step(count: number): void {
        if (this.phase === phase_open_root) this.root_opened();
        else if (this.phase === phase_open_free_set) this.free_set_opened(count);
        else if (this.phase === phase_open_log_walk) this.log_walked();
        else if (this.phase === phase_open_log_replay) this.log_replayed(count);
        else if (this.phase === phase_open_memory_index) this.memory_indexes_opened(count);
        else if (this.phase === phase_open_memory_data) this.memory_data_opened(count);
        else assert.fail('lsm: a checkpoint read in no phase');
    }

    private read_verify(index: number): void {
        assert(index >= 0 && index < this.read_count);
        const reference = index * reference_size;
        const address = reference_address(this.read_references, reference);
        const offset = this.read_buffers[index]!;
        const type = this.read_types[index]!;
        const tree = this.read_trees[index] === 0 ? null : this.trees[this.read_trees[index]! - 1]!;
        const tree_id = tree === null ? 0 : tree.options.tree_id;
        if (this.read_results[index] !== this.block) {
            throw new BlockRefusal(address, tree_id, `read failed (${this.read_results[index]})`);
        }
        if (!block_verify(this.memory, offset, this.read_references, reference, type)) {
            throw new BlockRefusal(address, tree_id, 'not the block the checkpoint names');
        }
        if (tree !== null && !lsm_block_matches(this.memory, offset, tree.layout, tree_id, type)) {
            throw new BlockRefusal(address, tree_id, 'not a block of this tree');
        }
    }

    private root_opened(): void {
        assert(this.phase === phase_open_root && this.io_in_flight === 0);
        const offset = this.buffer(0);
        const memory = this.memory;
        const refuse = (reason: string): never => {
            throw new BlockRefusal(this.root_address, 0, reason);
        };
        if (u32_read(memory, offset + root_tree_count) !== this.trees.length) refuse('trees');
        if (u32_read(memory, offset + root_free_set_count) !==
            this.geometry.free_set_block_count ||
            u32_read(memory, offset + root_grid_block_count) !==
            this.device.free_set.block_count) refuse('a root for another grid');
        this.beat = u64_read(memory, offset + root_beat);
        this.log_count = u32_read(memory, offset + root_log_count);
        this.log_newest = u64_read(memory, offset + root_log_sequence);
        if (this.log_count > this.options.manifest_log_blocks_max ||
            this.log_count > this.log_newest) refuse('a manifest log past its bound');
        for (let index = 0; index < this.trees.length; index++) {
            const tree_offset = offset + root_trees + index * root_tree_size;
            if (u32_read(memory, tree_offset) !== this.trees[index]!.options.tree_id) {
                refuse('a root of other trees');
            }
            this.memory_entry_counts[index] = u32_read(memory, tree_offset + 4);
            reference_copy(this.memory_references, index * reference_size, memory,
                tree_offset + 8);
        }
        const free_set_offset = offset + root_trees + this.trees.length * root_tree_size;
        this.phase = phase_open_free_set;
        for (let index = 0; index < this.geometry.free_set_block_count; index++) {
            const reference = free_set_offset + index * reference_size;
            const address = reference_address(memory, reference);
            if (address < 1 || address > this.device.free_set.block_count ||
                !this.device.free_set.mark(address)) refuse('a free set block named twice');
            this.free_set_addresses[index] = address;
            this.read(memory, reference, this.buffer(this.geometry.free_set_buffer(index)),
                BlockType.lsm_free_set);
        }
        assert(this.io_in_flight === this.geometry.free_set_block_count);
    }

    /** Marks every block the free set names (the root and the free set's own already are). */
    private free_set_opened(count: number): void {
        assert(count === this.geometry.free_set_block_count);
        assert(this.phase === phase_open_free_set && this.io_in_flight === 0);
        const free_set = this.device.free_set;
        const payload = this.block - header_size;
        for (let address = 1; address <= free_set.block_count; address++) {
            const byte = address >>> 3;
            const offset = this.buffer(this.geometry.free_set_buffer(Math.floor(byte / payload)));
            if (((this.memory[offset + header_size + (byte % payload)]! >>> (address & 7)) &
                1) === 0) continue;
            if (!free_set.mark(address)) {
                throw new BlockRefusal(this.free_set_addresses[0]!, 0,
                    `the free set names block ${address}, a checkpoint block`);
            }
        }
        if (this.log_count === 0) {
            this.memory_tables_open();
            return;
        }
        // The walk: from the newest block, each naming the one before it.
        assert(this.log_newest >= this.log_count);
        this.phase = phase_open_log_walk;
        this.open_sequence = this.log_newest;
        reference_copy(this.log_references, this.log_slot(this.log_newest), this.memory,
            this.buffer(0) + root_log_reference);
        this.read(this.log_references, this.log_slot(this.log_newest),
            this.buffer(this.geometry.log_buffer(0)), BlockType.lsm_manifest_log);
    }

    private log_block_check(offset: number, sequence: number): void {
        assert(sequence >= 1 && sequence <= this.log_newest);
        const address = u64_read(this.memory, offset + offsets.block.address);
        if (u32_read(this.memory, offset + o_sequence) !== sequence ||
            u32_read(this.memory, offset + o_event_count) > this.geometry.events_per_block) {
            throw new BlockRefusal(address, 0, `not manifest log block ${sequence}`);
        }
    }

    private log_walked(): void {
        assert(this.phase === phase_open_log_walk && this.io_in_flight === 0);
        const offset = this.buffer(this.geometry.log_buffer(0));
        this.log_block_check(offset, this.open_sequence);
        const oldest = this.log_newest - this.log_count + 1;
        if (this.open_sequence > oldest) {
            this.open_sequence -= 1;
            reference_copy(this.log_references, this.log_slot(this.open_sequence), this.memory,
                offset + log_previous);
            if (reference_address(this.log_references, this.log_slot(this.open_sequence)) < 1) {
                throw new BlockRefusal(u64_read(this.memory, offset + offsets.block.address), 0,
                    `manifest log block ${this.open_sequence + 1} names no block before it`);
            }
            this.read(this.log_references, this.log_slot(this.open_sequence), offset,
                BlockType.lsm_manifest_log);
            return;
        }
        this.phase = phase_open_log_replay;
        this.log_replay_batch();
    }

    /** Reads the next batch of log blocks, oldest first, each into its own buffer. */
    private log_replay_batch(): void {
        assert(this.phase === phase_open_log_replay && this.read_count === 0);
        assert(this.open_sequence >= 1 && this.open_sequence <= this.log_newest);
        const remaining = this.log_newest - this.open_sequence + 1;
        const count = Math.min(remaining, this.geometry.log_blocks_new_max);
        assert(count >= 1);
        for (let index = 0; index < count; index++) {
            const sequence = this.open_sequence + index;
            this.read(this.log_references, this.log_slot(sequence),
                this.buffer(this.geometry.log_buffer(index)), BlockType.lsm_manifest_log);
        }
    }

    private log_replayed(count: number): void {
        assert(this.phase === phase_open_log_replay && this.io_in_flight === 0);
        assert(count >= 1 && this.open_sequence + count - 1 <= this.log_newest);
        const memory = this.memory;
        for (let index = 0; index < count; index++) {
            const offset = this.buffer(this.geometry.log_buffer(index));
            const sequence = this.open_sequence + index;
            this.log_block_check(offset, sequence);
            const events = u32_read(memory, offset + o_event_count);
            for (let event = 0; event < events; event++) {
                const event_offset = offset + log_events + event * manifest_event_size;
                const tree = this.tree_find(event_tree_id(memory, event_offset));
                if (tree === null || !event_valid(memory, event_offset, tree.manifest)) {
                    throw new BlockRefusal(u64_read(memory, offset + offsets.block.address), 0,
                        `manifest log block ${sequence}: event ${event} names no table`);
                }
                event_apply(this.words, memory, event_offset, tree.manifest, sequence);
            }
        }
        this.open_sequence += count;
        if (this.open_sequence <= this.log_newest) this.log_replay_batch();
        else this.memory_tables_open();
    }

    /** Reads each tree's mutable table index block (those that had entries). */
    private memory_tables_open(): void {
        assert(this.io_in_flight === 0 && this.read_count === 0);
        this.phase = phase_open_memory_index;
        this.memory_address_count = 0;
        for (let index = 0; index < this.trees.length; index++) {
            const reference = index * reference_size;
            if (reference_address(this.memory_references, reference) === 0) continue;
            assert(this.memory_entry_counts[index]! > 0);
            this.memory_addresses[this.memory_address_count] =
                reference_address(this.memory_references, reference);
            this.memory_address_count += 1;
            this.read(this.memory_references, reference,
                this.buffer(this.geometry.memory_buffers_first[index]!), block_type_index, index);
        }
        assert.equal(this.io_in_flight, this.memory_address_count);
        if (this.io_in_flight === 0) this.open_finish();
    }

    /** Reads the data blocks every restored index block names. */
    private memory_indexes_opened(count: number): void {
        assert(count >= 1 && this.phase === phase_open_memory_index);
        this.phase = phase_open_memory_data;
        for (let index = 0; index < this.trees.length; index++) {
            if (reference_address(this.memory_references, index * reference_size) === 0) continue;
            const layout = this.trees[index]!.layout;
            const first = this.geometry.memory_buffers_first[index]!;
            const index_offset = this.buffer(first);
            const blocks = block_count(this.memory, index_offset);
            assert(blocks >= 1 && blocks <= layout.data_block_count_max);
            for (let data = 0; data < blocks; data++) {
                const reference = index_offset + layout.index_reference_offset(data);
                this.memory_addresses[this.memory_address_count] =
                    reference_address(this.memory, reference);
                this.memory_address_count += 1;
                this.read(this.memory, reference, this.buffer(first + 1 + data), block_type_data,
                    index);
            }
        }
        assert(this.io_in_flight >= count);
    }

    /** Puts every entry of the restored tables back into the mutable tables. */
    private memory_data_opened(count: number): void {
        assert(count >= 1 && this.phase === phase_open_memory_data);
        for (let index = 0; index < this.trees.length; index++) {
            if (reference_address(this.memory_references, index * reference_size) === 0) continue;
            const tree = this.trees[index]!;
            const layout = tree.layout;
            const first = this.geometry.memory_buffers_first[index]!;
            const blocks = block_count(this.memory, this.buffer(first));
            for (let data = 0; data < blocks; data++) {
                const offset = this.buffer(first + 1 + data);
                const entries = block_count(this.memory, offset);
                assert(entries >= 1 && entries <= layout.data_entry_count_max);
                const tombstones = (offset + layout.data_tombstones_offset) / 4;
                for (let entry = 0; entry < entries; entry++) {
                    const tombstone = ((this.words[tombstones + (entry >>> 5)]! >>>
                        (entry & 31)) & 1) === 1;
                    tree.mutable_restore(this.words, (offset + layout.data_key_offset(entry)) / 4,
                        (offset + layout.data_value_offset(entry)) / 4, tombstone);
                }
            }
            if (tree.mutable_table.count !== this.memory_entry_counts[index]) {
                throw new BlockRefusal(this.root_address, 0,
                    `tree ${tree.options.tree_id}: the mutable table lost entries`);
            }
        }
        this.open_finish();
    }

    private open_finish(): void {
        assert(this.io_in_flight === 0 && this.read_count === 0);
        // The manifest and the free set were written together: every table they restore is in
        // blocks the free set names, or the checkpoint is not one this forest wrote.
        for (const tree of this.trees) {
            const manifest = tree.manifest;
            for (let level = 0; level < manifest.level_count; level++) {
                for (let position = 0; position < manifest.counts[level]!; position++) {
                    const address = manifest.index_address(level, position);
                    if (address <= this.device.free_set.block_count &&
                        this.device.free_set.is_acquired(address)) continue;
                    throw new BlockRefusal(this.root_address, 0,
                        `tree ${tree.options.tree_id}: table block ${address} is not acquired`);
                }
            }
        }
        // A replica that restarts here and one that ran on acquire from the lowest address.
        this.device.free_set.cursor_reset();
        assert(this.log_count <= this.options.manifest_log_blocks_max);
        assert(this.device.free_set.is_acquired(this.root_address));
        this.phase = phase_idle;
    }
}
