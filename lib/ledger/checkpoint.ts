// Checkpoints: the ledger state written to the grid every `interval_ops` ops, so that WAL slots
// behind it can be reused and startup replays only the ops after it (docs/data-file.md §6.4, §8).
//
// The state is an image of segments (the ledger's persistent arrays, then the client-sessions
// blob), each cut into chunks of one block's payload. A checkpoint is a copy-on-write tree:
// root block -> manifest blocks (32-byte references to chunks) -> chunk blocks. Only chunks that
// changed since the previous checkpoint are written, to fresh addresses; so are the manifest
// blocks that reference them, and the root. Nothing the durable checkpoint references is
// overwritten, so a crash at any point leaves it intact. The superblock then swings to the new
// root (checkpoint_id = the root's header checksum), and only after that are the blocks the new
// tree replaced freed. The cost of a checkpoint follows what changed, not the ledger's size: the
// record stores mark dirty chunks as they change, and append-only segments are written from the
// previous checkpoint's high-water mark.
//
// Trickle: transfer records and history rows are append-only once executed (a chain rollback
// removes only records of the batch being executed, and transfer status lives in its own
// segment), so a chunk of those segments that is full below the ledger's used bytes never changes
// again. Such sealed chunks are pre-written between checkpoints, to fresh blocks the durable
// checkpoint does not reference; the next checkpoint references them instead of writing them
// during its pause. A crash before that checkpoint leaves them unreferenced, and restore derives
// the free set by reachability, so they are simply free again. They stay acquired until then, and
// the blocks they replace are released only when the checkpoint that references them is durable.
//
// Determinism: every replica must write the same grid, block for block and address for address,
// for the same committed ops (grid repair and state sync exchange blocks by address). So what is
// pre-written, and where, is decided by `trickle_op(op)`, called once per executed op on every
// path (live, backup, replay): it reserves an address for every chunk op sealed, in a fixed order,
// from a free set whose contents and cursor after a checkpoint are the same whether the replica
// wrote that checkpoint or restored it. The writes themselves start as block buffers free up and
// may complete in any order; a reservation never waits for them, and the next checkpoint starts
// those still queued before its manifests. (`trickle(blocks_max)`, the older entry point, reserves
// only what it can start at once, so its addresses follow I/O timing: kept until the replica
// calls `trickle_op`; after the first `trickle_op` it only starts queued writes.)
//
// Restore reads the tree the superblock names and verifies every block against the checksum its
// parent stores. The free set is not persisted: it is exactly the set of blocks reachable from the
// root. A block that fails verification (or cannot be read) is, on a single replica, a refusal
// naming the grid and its address: it has no other copy, and a silently wrong ledger is worse
// than not starting. A cluster replica attaches a grid repair (lib/vsr/grid_repair.ts): the
// buffer then waits while the block is fetched from a peer by (address, checksum), the block is
// written back to its address, and only then applied; the restore goes on meanwhile with the
// other buffers.
import assert from 'node:assert/strict';
import os from 'node:os';

import { errno_name } from '../io/errors';
import { GridRefusal, grid_write_attempts_max } from '../vsr/checkpoint_schedule';
import type { CheckpointListener, StateCheckpointer } from '../vsr/checkpoint_schedule';
import type { Ledger, LedgerConfig } from './ledger';
import { state_segment_layout } from './ledger';
import type { ClientReplies } from '../vsr/client_replies';
import {
    BlockType, FreeSet, block_chunk, block_payload_size, block_seal, block_segment,
    block_verify, reference_address, reference_clear, reference_copy, reference_size,
    reference_size_read, reference_write,
} from '../vsr/grid';
import { frame } from '../vsr/header_layout';
import { grid_repair_wanted_max } from '../vsr/grid_repair';
import type { GridRepairQueue, GridRepairWaiter } from '../vsr/grid_repair';
import { u32_read, u32_write, u64_read, u64_write } from '../vsr/prepare_header';
import type { Storage, StorageCompletionTarget } from '../storage/storage';
import { StorageRefusal } from '../storage/storage';
import type { SuperBlock, SuperBlockListener } from '../vsr/superblock';
import { VsrState } from '../vsr/superblock';
import type { StorageConfig } from '../storage/zones';
import { Zone, header_size, sector_ceil } from '../storage/zones';

// ------------------------------------------------------------------------------ grid sizing

/** The ledger's segments plus the client-sessions blob. */
export const segment_count = state_segment_layout.length + 1;
const segment_sessions = segment_count - 1;
export const segment_names: readonly string[] = [
    ...state_segment_layout.map((entry) => entry[0]), 'client_sessions',
];

/** Capacity in bytes of each segment, as the Ledger constructor sizes its arrays. */
export function segment_capacities(ledger: LedgerConfig, sessions_size_max: number): number[] {
    const transfers = ledger.transfers_max;
    const elements = [ledger.accounts_max, transfers, transfers, transfers,
        ledger.orphans_max ?? transfers, ledger.history_max ?? transfers,
        ledger.change_events_max ?? 0];
    const capacities = elements.map((count, index) => count * state_segment_layout[index]![1]);
    capacities.push(sessions_size_max);
    return capacities;
}

/** Chunks, manifest blocks and root of one full checkpoint of a state with these capacities. */
function tree_shape(capacities: readonly number[], block_size: number): {
    chunks: number; manifests: number;
} {
    const payload = block_payload_size(block_size);
    let chunks = 0;
    for (const capacity of capacities) chunks += Math.ceil(capacity / payload);
    const manifests = Math.ceil(chunks / Math.floor(payload / reference_size));
    assert(root_body_fixed + manifests * reference_size <= payload,
        'the root block cannot reference every manifest block: use a larger block_size');
    return { chunks, manifests };
}

/**
 * Grid blocks for two full checkpoints: the durable one stays intact while the next is written,
 * and in the worst case every chunk changed. No free-set blocks are needed (see FreeSet).
 */
export function grid_block_count_for(ledger: LedgerConfig, sessions_size_max: number,
    block_size: number): number {
    const shape = tree_shape(segment_capacities(ledger, sessions_size_max), block_size);
    return 2 * (shape.chunks + shape.manifests + 1);
}

export function storage_config_for(base: StorageConfig, ledger: LedgerConfig,
    sessions_size_max: number): StorageConfig {
    return {
        ...base,
        grid_block_count: grid_block_count_for(ledger, sessions_size_max, base.block_size),
    };
}

/** Block buffers the checkpointer keeps in flight (writes at checkpoint, reads at restore). */
export const checkpoint_buffers = 8;
/** Storage operations the checkpointer has in flight at most: one per buffer, plus its sync. */
export const checkpointer_operations_max = checkpoint_buffers + 1;
// Each restore buffer may wait for one repaired block.
assert(checkpoint_buffers <= grid_repair_wanted_max);

/** Segments whose full chunks below the used bytes never change: `trickle` may pre-write them. */
const segment_trickle: readonly number[] = [1, 5];
assert.equal(state_segment_layout[1]![0], 'transfers');
assert.equal(state_segment_layout[5]![0], 'history');
assert.equal(state_segment_layout[5]![2], 'append');

export function checkpointer_arena_size(config: StorageConfig): number {
    return checkpoint_buffers * config.block_size;
}

// ------------------------------------------------------------------------------ the root block

const root_magic = 0x50434c52; // "RLCP"
const b_magic = 0;
const b_segment_count = 4;
const b_payload = 8;
const b_manifest_count = 12;
const b_op = 16;
const b_prepare_checksum = 32;
const b_segments = 48; // per segment: capacity u64, used u64.
const root_body_fixed = b_segments + 16 * 8;

const enum Phase {
    idle, chunks, manifests, root, replies, sync, superblock, sync_after, failed,
    restore_root, restore_manifests, restore_chunks,
}

const tag_sync = checkpoint_buffers;

/** A restore buffer's repair: none, waiting for a peer's block, writing it back. */
const repair_none = 0;
const repair_waiting = 1;
const repair_writing = 2;

export class Checkpointer implements StorageCompletionTarget, SuperBlockListener,
    StateCheckpointer, GridRepairWaiter {
    private readonly storage: Storage;
    private readonly superblock: SuperBlock;
    private readonly ledger: Ledger;
    private readonly client_replies: ClientReplies | null;
    private readonly listener: CheckpointListener;
    private readonly target: number;
    readonly block_size: number;
    readonly payload: number;
    readonly refs_per_manifest: number;
    readonly chunk_total: number;
    readonly manifest_count: number;
    readonly free_set: FreeSet;

    /** The state image: the ledger's segment views, then the sessions buffer (restore target). */
    private readonly segments: Uint8Array[];
    private readonly capacity: Float64Array = new Float64Array(segment_count);
    private readonly chunk_first: Uint32Array = new Uint32Array(segment_count + 1);
    /** Used bytes per segment: of the durable checkpoint, and of the one being written. */
    private readonly used_durable: Float64Array = new Float64Array(segment_count);
    private readonly used: Float64Array = new Float64Array(segment_count);
    private readonly used_check: Float64Array = new Float64Array(segment_count);
    private readonly sessions_buffer: Uint8Array;
    private sessions_source: Uint8Array;

    /** The tree in memory: references to every chunk and manifest block, and the root's. */
    private readonly chunk_refs: Uint8Array;
    private readonly manifest_refs: Uint8Array;
    private readonly root_ref: Uint8Array = new Uint8Array(reference_size);
    private readonly root_ref_next: Uint8Array = new Uint8Array(reference_size);
    private readonly checkpoint_prepare_checksum: Uint8Array = new Uint8Array(16);

    private readonly chunk_dirty: Uint8Array;
    private readonly dirty_list: Uint32Array;
    private dirty_count = 0;
    private readonly manifest_dirty: Uint8Array;
    /** Blocks the checkpoint being written replaced: freed once the superblock names it. */
    private readonly released: Uint32Array;
    private released_count = 0;

    /** Per segment: bytes from which chunks have no pre-write reserved yet (chunk-aligned; from
     *  the durable checkpoint's last chunk on; unused for segments outside segment_trickle).
     *  Chunks below it have their block (written or queued) and the next checkpoint skips them. */
    private readonly trickle_end: Float64Array = new Float64Array(segment_count);
    /** Reserved pre-writes not started yet, oldest first: the chunk and the address it was
     *  given. A ring over the chunks of the trickled segments: each is reserved at most once per
     *  interval, and the queue is empty at every checkpoint. */
    private readonly trickle_queue_chunk: Uint32Array;
    private readonly trickle_queue_address: Uint32Array;
    private trickle_queue_head = 0;
    private trickle_queue_count = 0;
    /** The last op trickle_op() reserved for: the durable checkpoint op until the first. */
    private op_trickled = -1;
    /** Latched by the first trickle_op(): from then on trickle() only starts queued writes. */
    private trickle_per_op = false;
    /** Blocks the older `trickle` may still reserve before the replica asks again. */
    private trickle_budget_blocks = 0;
    private trickle_error: StorageRefusal | null = null;
    /** Chunks reserved since the durable checkpoint, and pre-writes started in total. */
    trickle_chunks_pending = 0;
    trickle_chunks_written = 0;

    private readonly buffer_offsets: Float64Array = new Float64Array(checkpoint_buffers);
    /** What each buffer's read is for: a manifest or chunk index (-1: free buffer). */
    private readonly buffer_item: Float64Array = new Float64Array(checkpoint_buffers).fill(-1);
    private readonly buffer_address: Float64Array = new Float64Array(checkpoint_buffers);
    /** The size written from each buffer, and the attempts its write has had. */
    private readonly buffer_size_written: Float64Array = new Float64Array(checkpoint_buffers);
    private readonly buffer_attempts: Uint8Array = new Uint8Array(checkpoint_buffers);
    /** Block writes that failed and were issued again (a device error that may pass). */
    write_retries = 0;
    /** A cluster replica's grid repair (null: a single replica refuses a corrupt block). */
    private repair: GridRepairQueue | null = null;
    /** Per buffer: repair_none, repair_waiting or repair_writing (restore only). */
    private readonly buffer_repair: Uint8Array = new Uint8Array(checkpoint_buffers);
    /** Blocks restore found corrupt or unreadable, and of those the ones repaired and applied. */
    blocks_corrupt = 0;
    blocks_repaired = 0;
    private readonly state = new VsrState();
    private phase = Phase.idle;
    private cursor = 0;
    private in_flight = 0;
    private error: StorageRefusal | null = null;
    private op_next = 0;
    private commit_max_next = 0;
    private op_durable = -1;
    superblock_waiting = false;

    /** The last checkpoint's pause: dirty chunks it wrote, blocks and bytes in all (queued
     *  pre-writes it had to start included), and how many of those were queued pre-writes. */
    last_chunks_written = 0;
    last_blocks_written = 0;
    last_bytes_written = 0;
    last_trickle_flushed = 0;

    constructor(storage: Storage, superblock: SuperBlock, ledger: Ledger,
        client_replies: ClientReplies | null, listener: CheckpointListener,
        sessions_size_max: number) {
        assert.equal(os.endianness(), 'LE', 'the checkpoint format is little-endian');
        const config = storage.layout.config;
        this.storage = storage;
        this.superblock = superblock;
        this.ledger = ledger;
        this.client_replies = client_replies;
        this.listener = listener;
        this.block_size = config.block_size;
        this.payload = block_payload_size(config.block_size);
        this.refs_per_manifest = Math.floor(this.payload / reference_size);
        this.sessions_buffer = new Uint8Array(sessions_size_max);
        this.sessions_source = this.sessions_buffer;
        this.segments = [...ledger.state_segments(), this.sessions_buffer];
        assert.equal(this.segments.length, segment_count);
        const ledger_config: LedgerConfig = {
            accounts_max: ledger.accounts_max, transfers_max: ledger.transfers_max,
            orphans_max: ledger.orphans_max, history_max: ledger.history_max,
            change_events_max: ledger.change_events_max,
        };
        const capacities = segment_capacities(ledger_config, sessions_size_max);
        for (let segment = 0; segment < segment_count; segment++) {
            assert.equal(this.segments[segment]!.length, capacities[segment],
                `segment ${segment_names[segment]} differs from segment_capacities()`);
            this.capacity[segment] = capacities[segment]!;
            this.chunk_first[segment + 1] = this.chunk_first[segment]! +
                Math.ceil(capacities[segment]! / this.payload);
        }
        const shape = tree_shape(capacities, config.block_size);
        this.chunk_total = shape.chunks;
        this.manifest_count = shape.manifests;
        assert.equal(this.chunk_first[segment_count], this.chunk_total);
        assert(config.grid_block_count >= grid_block_count_for(ledger_config, sessions_size_max,
            config.block_size), 'the grid is too small for two checkpoints of this ledger');
        this.free_set = new FreeSet(config.grid_block_count);
        this.chunk_refs = new Uint8Array(this.chunk_total * reference_size);
        this.manifest_refs = new Uint8Array(this.manifest_count * reference_size);
        this.chunk_dirty = new Uint8Array(this.chunk_total);
        this.dirty_list = new Uint32Array(this.chunk_total);
        this.manifest_dirty = new Uint8Array(this.manifest_count);
        this.released = new Uint32Array(this.chunk_total + this.manifest_count + 1);
        let trickle_chunks = 0;
        for (const segment of segment_trickle) {
            trickle_chunks += this.chunk_first[segment + 1]! - this.chunk_first[segment]!;
        }
        this.trickle_queue_chunk = new Uint32Array(Math.max(1, trickle_chunks));
        this.trickle_queue_address = new Uint32Array(Math.max(1, trickle_chunks));
        const records_per_chunk = this.payload / 128;
        assert(Number.isInteger(records_per_chunk));
        ledger.accounts.dirty_track(records_per_chunk);
        ledger.transfers.dirty_track(records_per_chunk);
        for (let buffer = 0; buffer < checkpoint_buffers; buffer++) {
            this.buffer_offsets[buffer] = storage.arena.allocate(this.block_size);
        }
        this.target = storage.target_register(this);
    }

    get busy(): boolean { return this.phase !== Phase.idle; }

    /** A cluster replica: corrupt blocks at restore are fetched from peers, not refused. */
    grid_repair_attach(repair: GridRepairQueue): void {
        assert(this.repair === null && this.phase === Phase.idle && this.op_durable === -1);
        this.repair = repair;
        repair.attach(this);
    }

    /** Grid writes or reads in flight, trickle writes included (tests). */
    get in_flight_count(): number { return this.in_flight; }

    /** Pre-writes reserved but not started yet (tests, logs). */
    get trickle_queued(): number { return this.trickle_queue_count; }

    /** The durable checkpoint op (-1 before restore). */
    get op_checkpoint(): number { return this.op_durable; }

    sessions(): Uint8Array {
        assert(this.op_durable >= 0);
        return this.sessions_buffer.subarray(0, this.used_durable[segment_sessions]);
    }

    prepare_checksum(): Uint8Array {
        return this.checkpoint_prepare_checksum;
    }

    // ------------------------------------------------------------------------ checkpoint

    checkpoint_start(op: number, commit_max: number, prepare_checksum: Uint8Array,
        prepare_checksum_offset: number, sessions: Uint8Array, sessions_size: number): void {
        assert(this.phase === Phase.idle && this.op_durable >= 0, 'checkpoint: not restored');
        assert(op > this.op_durable && commit_max >= op);
        assert(sessions_size >= 0 && sessions_size <= this.capacity[segment_sessions]!);
        assert(sessions.length >= sessions_size);
        // Per op, every op up to this one reserved its pre-writes: the tree is the same on every
        // replica only if none was skipped.
        if (this.trickle_per_op) assert.equal(this.op_trickled, op, 'checkpoint: trickle_op');
        this.op_next = op;
        this.commit_max_next = commit_max;
        this.sessions_source = sessions;
        for (let index = 0; index < 16; index++) {
            this.checkpoint_prepare_checksum[index] =
                prepare_checksum[prepare_checksum_offset + index]!;
        }
        this.ledger.state_used_bytes(this.used);
        this.used[segment_sessions] = sessions_size;
        for (const segment of segment_trickle) {
            // Pre-written chunks must still be whole: the ledger never drops below them.
            assert(this.used[segment]! >= this.trickle_end[segment]!,
                'checkpoint: a pre-written chunk is no longer part of the state');
        }
        this.dirty_collect();
        this.last_chunks_written = 0;
        this.last_blocks_written = 0;
        this.last_bytes_written = 0;
        this.last_trickle_flushed = 0;
        // released_count is not reset: trickle's replaced blocks wait there for this checkpoint.
        this.trickle_budget_blocks = 0;
        // A failed pre-write fails this checkpoint (its reference would name an unwritten block).
        this.error = this.trickle_error;
        this.free_set.cursor_reset();
        this.phase = Phase.chunks;
        this.cursor = 0;
        this.advance();
    }

    /** The chunks this checkpoint must write, from the stores' dirty chunks and the watermarks. */
    private dirty_collect(): void {
        assert.equal(this.dirty_count, 0);
        const accounts = this.ledger.accounts, transfers = this.ledger.transfers;
        for (let index = 0; index < accounts.dirty_count; index++) {
            this.dirty_mark(0, accounts.dirty_list[index]! * this.payload);
        }
        for (let index = 0; index < transfers.dirty_count; index++) {
            const slot = transfers.dirty_list[index]! * transfers.dirty_chunk_records;
            for (let segment = 1; segment <= 3; segment++) {
                const byte_offset = slot * state_segment_layout[segment]![1];
                // A status change marks the record's chunk too: the record bytes of a pre-written
                // chunk did not change (asserted in checkpoint_start), only its status did.
                if (segment === 1 && byte_offset < this.trickle_end[1]!) continue;
                this.dirty_mark(segment, byte_offset);
            }
        }
        // Dirty marks are taken now: a change during the checkpoint breaks the contract and is
        // caught at the end (dirty_count must still be zero).
        accounts.dirty_clear();
        transfers.dirty_clear();
        for (let segment = 0; segment < segment_count; segment++) {
            const used = this.used[segment]!;
            const durable = this.used_durable[segment]!;
            assert(segment === segment_sessions || used >= durable, 'state shrank');
            // Appends since the last checkpoint (less what trickle wrote), every sessions chunk.
            const from = segment === segment_sessions ? 0 :
                Math.max(Math.floor(durable / this.payload) * this.payload,
                    this.trickle_end[segment]!);
            if (used === durable && segment !== segment_sessions) continue;
            const end = Math.max(used, durable);
            for (let at = Math.floor(from / this.payload) * this.payload; at < end;
                at += this.payload) {
                this.dirty_mark(segment, at);
            }
        }
    }

    private dirty_mark(segment: number, byte_offset: number): void {
        const chunk = this.chunk_first[segment]! + Math.floor(byte_offset / this.payload);
        assert(chunk < this.chunk_first[segment + 1]!);
        if (this.chunk_dirty[chunk] === 1) return;
        this.chunk_dirty[chunk] = 1;
        this.dirty_list[this.dirty_count++] = chunk;
    }

    // ------------------------------------------------------------------------ trickle

    /**
     * Op `op` has just been executed: the ledger holds exactly the state after it (the replica
     * calls this where it executes an op, not where it commits it, since a single replica
     * executes ahead of its commits). Reserves a block for every chunk that op sealed and starts
     * as many of those writes as buffers allow; the rest start as buffers free up, or at the
     * next checkpoint. Called once per op, in op order, from the op after the durable checkpoint
     * up to and including the next checkpoint's op (before its checkpoint_start), on every path
     * that executes ops: then the reservations, and so the grid, are a function of the ops only.
     */
    trickle_op(op: number): void {
        assert(Number.isSafeInteger(op) && op >= 1);
        // A failed checkpoint stops the replica: nothing it reserves could be referenced.
        if (this.phase === Phase.failed) return;
        assert(this.phase === Phase.idle && this.op_durable >= 0,
            'trickle_op: an op executed while a checkpoint is written or restored');
        assert.equal(op, this.op_trickled + 1, 'trickle_op: once per executed op, in op order');
        // The older trickle() reserves by I/O timing: one interval must not mix the two.
        assert(this.trickle_per_op || this.trickle_chunks_pending === 0,
            'trickle_op: trickle() reserved blocks since the durable checkpoint');
        this.trickle_per_op = true;
        this.op_trickled = op;
        this.trickle_reserve(this.chunk_total);
        this.trickle_issue();
    }

    /**
     * The older entry point (deprecated: its reservations follow I/O timing, so two replicas'
     * grids differ; see the file comment). Until the first trickle_op(): pre-writes up to
     * `blocks_max` sealed chunks, more as write buffers free up. After it: only starts queued
     * writes. Returns the writes started now. Commits may go on meanwhile: a sealed chunk's
     * bytes never change.
     */
    trickle(blocks_max: number): number {
        assert(Number.isInteger(blocks_max) && blocks_max >= 0);
        if (this.phase !== Phase.idle || this.op_durable < 0) return 0;
        if (!this.trickle_per_op) this.trickle_budget_blocks = blocks_max;
        return this.trickle_advance();
    }

    /** Between checkpoints, after a trickle write completed or trickle() was called. */
    private trickle_advance(): number {
        if (this.phase !== Phase.idle || this.trickle_error !== null) return 0;
        if (!this.trickle_per_op) {
            // The older scheme: reserve only what can start now, within the budget.
            const free = Math.max(0, checkpoint_buffers - this.in_flight);
            const reserved = this.trickle_reserve(Math.min(free, this.trickle_budget_blocks));
            this.trickle_budget_blocks -= reserved;
            assert(this.trickle_budget_blocks >= 0);
        }
        return this.trickle_issue();
    }

    /**
     * Reserves blocks for up to `blocks_max` sealed chunks not reserved yet, transfers then
     * history, each in chunk order: the order, and so each chunk's address, follows the state.
     * Returns how many it reserved.
     */
    private trickle_reserve(blocks_max: number): number {
        assert(Number.isInteger(blocks_max) && blocks_max >= 0);
        this.ledger.state_used_bytes(this.used_check);
        let reserved = 0;
        for (const segment of segment_trickle) {
            const used = this.used_check[segment]!;
            assert(used >= this.trickle_end[segment]!, 'trickle: the state shrank');
            while (reserved < blocks_max && this.trickle_end[segment]! + this.payload <= used) {
                this.trickle_reserve_chunk(segment, this.trickle_end[segment]!);
                this.trickle_end[segment] = this.trickle_end[segment]! + this.payload;
                reserved += 1;
            }
        }
        assert(reserved <= blocks_max);
        return reserved;
    }

    private trickle_reserve_chunk(segment: number, start: number): void {
        const local = start / this.payload;
        assert(Number.isInteger(local));
        const chunk = this.chunk_first[segment]! + local;
        assert(chunk < this.chunk_first[segment + 1]!);
        assert.equal(this.chunk_dirty[chunk], 0);
        const ref_offset = chunk * reference_size;
        // The durable checkpoint may reference this chunk (its partial last chunk): that block
        // is freed only once the checkpoint referencing the new one is durable. Until the write
        // starts the reference is empty: nothing may name a block not yet sealed.
        this.release(this.chunk_refs, ref_offset);
        reference_clear(this.chunk_refs, ref_offset);
        this.manifest_dirty[Math.floor(chunk / this.refs_per_manifest)] = 1;
        const capacity = this.trickle_queue_chunk.length;
        assert(this.trickle_queue_count < capacity, 'trickle: the queue overflowed');
        const tail = (this.trickle_queue_head + this.trickle_queue_count) % capacity;
        this.trickle_queue_chunk[tail] = chunk;
        this.trickle_queue_address[tail] = this.address_acquire();
        this.trickle_queue_count += 1;
        this.trickle_chunks_pending += 1;
    }

    /** Between checkpoints: starts queued pre-writes while buffers are free. */
    private trickle_issue(): number {
        if (this.phase !== Phase.idle || this.trickle_error !== null) return 0;
        let issued = 0;
        while (this.trickle_queue_count > 0 && this.in_flight < checkpoint_buffers) {
            this.trickle_write_next();
            issued += 1;
        }
        return issued;
    }

    /** Starts the oldest queued pre-write, at the address its reservation gave it. */
    private trickle_write_next(): void {
        assert(this.trickle_queue_count > 0 && this.in_flight < checkpoint_buffers);
        const head = this.trickle_queue_head;
        const chunk = this.trickle_queue_chunk[head]!;
        const address = this.trickle_queue_address[head]!;
        this.trickle_queue_head = (head + 1) % this.trickle_queue_chunk.length;
        this.trickle_queue_count -= 1;
        const segment = this.segment_of(chunk);
        const local = chunk - this.chunk_first[segment]!;
        const start = local * this.payload;
        const ref_offset = chunk * reference_size;
        assert.equal(reference_address(this.chunk_refs, ref_offset), 0);
        assert(this.free_set.is_acquired(address));
        const buffer = this.buffer_acquire(chunk, address);
        const offset = this.buffer_offsets[buffer]!;
        const bytes = this.storage.arena.bytes;
        bytes.set(this.segments[segment]!.subarray(start, start + this.payload),
            offset + header_size);
        // Sealed with the durable checkpoint's op whenever it starts, even inside the next
        // checkpoint's pause: the block's bytes must not depend on when buffers freed up.
        this.block_seal_write(buffer, address, BlockType.chunk, this.payload, segment, local,
            this.op_durable);
        reference_write(this.chunk_refs, ref_offset, bytes, offset);
        this.trickle_chunks_written += 1;
        if (this.phase !== Phase.idle) {
            this.last_trickle_flushed += 1;
            this.last_blocks_written += 1;
            this.last_bytes_written += sector_ceil(header_size + this.payload);
        }
    }

    /** Issues writes until the buffers are busy or the phase's work is all submitted. */
    private advance(): void {
        // Bounded: each pass submits one write or moves to the next phase.
        for (let pass = 0; pass < this.chunk_total + this.manifest_count + 8; pass++) {
            if (this.error !== null) {
                if (this.in_flight === 0) this.fail();
                return;
            }
            if (this.phase === Phase.chunks) {
                // Queued pre-writes first: the manifests name them, and they were reserved first.
                if (this.trickle_queue_count > 0) {
                    if (this.in_flight < checkpoint_buffers) this.trickle_write_next();
                    else return;
                } else if (this.cursor === this.dirty_count) this.phase_next(Phase.manifests);
                else if (this.in_flight < checkpoint_buffers) this.chunk_write(this.cursor++);
                else return;
            } else if (this.phase === Phase.manifests) {
                if (this.cursor === this.manifest_count) this.phase_next(Phase.root);
                else if (this.manifest_dirty[this.cursor] === 0) this.cursor++;
                else if (this.in_flight < checkpoint_buffers) this.manifest_write(this.cursor++);
                else return;
            } else if (this.phase === Phase.root) {
                if (this.in_flight > 0) return;
                if (this.cursor === 0) {
                    this.cursor = 1;
                    this.root_write();
                    return;
                }
                this.phase_next(Phase.replies);
            } else if (this.phase === Phase.replies) {
                // Replies of ops up to this checkpoint must be durable before it is named.
                const replies = this.client_replies;
                if (replies !== null && replies.writes_in_flight > 0) {
                    replies.drain_notify(this);
                    return;
                }
                this.phase = Phase.sync;
                this.in_flight += 1;
                assert(this.in_flight <= checkpointer_operations_max);
                this.storage.sync(this.target, tag_sync);
                return;
            } else {
                return;
            }
        }
        assert.fail('checkpoint: advance did not settle');
    }

    private phase_next(phase: Phase): void {
        this.phase = phase;
        this.cursor = 0;
    }

    /** Called by ClientReplies when its last in-flight write completed. */
    client_replies_drained(): void {
        assert(this.phase === Phase.replies);
        this.advance();
    }

    private buffer_acquire(item: number, address: number): number {
        for (let buffer = 0; buffer < checkpoint_buffers; buffer++) {
            if (this.buffer_item[buffer] !== -1) continue;
            this.buffer_item[buffer] = item;
            this.buffer_address[buffer] = address;
            this.in_flight += 1;
            assert(this.in_flight <= checkpointer_operations_max);
            return buffer;
        }
        assert.fail('checkpoint: no free block buffer');
    }

    private address_acquire(): number {
        const address = this.free_set.acquire();
        // Sized for two full checkpoints at startup, so running out is a programmer error.
        assert(address > 0, 'grid full: grid_block_count_for() was not honoured');
        return address;
    }

    private release(ref_bytes: Uint8Array, ref_offset: number): void {
        const address = reference_address(ref_bytes, ref_offset);
        if (address === 0) return;
        this.released[this.released_count++] = address;
    }

    private chunk_write(index: number): void {
        const chunk = this.dirty_list[index]!;
        this.chunk_dirty[chunk] = 0;
        const segment = this.segment_of(chunk);
        const local = chunk - this.chunk_first[segment]!;
        const start = local * this.payload;
        const length = Math.min(this.payload, Math.max(0, this.used[segment]! - start));
        const ref_offset = chunk * reference_size;
        this.manifest_dirty[Math.floor(chunk / this.refs_per_manifest)] = 1;
        this.release(this.chunk_refs, ref_offset);
        if (length === 0) {
            // The chunk is past the end of the state now (a shrunk sessions blob): no block.
            reference_clear(this.chunk_refs, ref_offset);
            return;
        }
        const source = segment === segment_sessions ? this.sessions_source
            : this.segments[segment]!;
        const address = this.address_acquire();
        const buffer = this.buffer_acquire(chunk, address);
        const offset = this.buffer_offsets[buffer]!;
        const bytes = this.storage.arena.bytes;
        // One view per chunk per checkpoint (not per request): the copy itself is native.
        bytes.set(source.subarray(start, start + length), offset + header_size);
        this.block_write(buffer, address, BlockType.chunk, length, segment, local);
        reference_write(this.chunk_refs, ref_offset, bytes, offset);
        this.last_chunks_written += 1;
    }

    private manifest_write(manifest: number): void {
        this.manifest_dirty[manifest] = 0;
        const first = manifest * this.refs_per_manifest;
        const count = Math.min(this.refs_per_manifest, this.chunk_total - first);
        const ref_offset = manifest * reference_size;
        this.release(this.manifest_refs, ref_offset);
        const address = this.address_acquire();
        const buffer = this.buffer_acquire(manifest, address);
        const offset = this.buffer_offsets[buffer]!;
        const bytes = this.storage.arena.bytes;
        bytes.set(this.chunk_refs.subarray(first * reference_size,
            (first + count) * reference_size), offset + header_size);
        this.block_write(buffer, address, BlockType.manifest, count * reference_size, 0,
            manifest);
        reference_write(this.manifest_refs, ref_offset, bytes, offset);
    }

    private root_write(): void {
        this.release(this.root_ref, 0);
        const address = this.address_acquire();
        const buffer = this.buffer_acquire(0, address);
        const offset = this.buffer_offsets[buffer]!;
        const bytes = this.storage.arena.bytes;
        const body = offset + header_size;
        const length = root_body_fixed + this.manifest_count * reference_size;
        bytes.fill(0, body, body + root_body_fixed);
        u32_write(bytes, body + b_magic, root_magic);
        u32_write(bytes, body + b_segment_count, segment_count);
        u32_write(bytes, body + b_payload, this.payload);
        u32_write(bytes, body + b_manifest_count, this.manifest_count);
        u64_write(bytes, body + b_op, this.op_next);
        bytes.set(this.checkpoint_prepare_checksum, body + b_prepare_checksum);
        for (let segment = 0; segment < segment_count; segment++) {
            u64_write(bytes, body + b_segments + segment * 16, this.capacity[segment]!);
            u64_write(bytes, body + b_segments + segment * 16 + 8, this.used[segment]!);
        }
        bytes.set(this.manifest_refs, body + root_body_fixed);
        this.block_write(buffer, address, BlockType.root, length, 0, 0);
        reference_write(this.root_ref_next, 0, bytes, offset);
    }

    private block_write(buffer: number, address: number, type: number, body_size: number,
        segment: number, chunk: number): void {
        this.last_blocks_written += 1;
        this.last_bytes_written += sector_ceil(header_size + body_size);
        this.block_seal_write(buffer, address, type, body_size, segment, chunk, this.op_next);
    }

    private block_seal_write(buffer: number, address: number, type: number, body_size: number,
        segment: number, chunk: number, op: number): void {
        const offset = this.buffer_offsets[buffer]!;
        const bytes = this.storage.arena.bytes;
        const size = header_size + body_size;
        const size_written = sector_ceil(size);
        bytes.fill(0, offset + size, offset + size_written);
        block_seal(bytes, offset, this.superblock.cluster_bytes(), address, op, type,
            size, segment, chunk);
        this.buffer_size_written[buffer] = size_written;
        this.buffer_attempts[buffer] = 1;
        this.storage.write(this.target, buffer, Zone.grid, (address - 1) * this.block_size,
            offset, size_written);
    }

    /**
     * A failed block write is issued again from the same sealed buffer, up to
     * grid_write_attempts_max attempts in all; true when it was (its completion comes later).
     */
    private block_write_retry(buffer: number, result: number): boolean {
        if (result >= 0 || this.buffer_attempts[buffer]! >= grid_write_attempts_max) return false;
        this.buffer_attempts[buffer] += 1;
        this.write_retries += 1;
        this.in_flight += 1;
        this.storage.write(this.target, buffer, Zone.grid,
            (this.buffer_address[buffer]! - 1) * this.block_size, this.buffer_offsets[buffer]!,
            this.buffer_size_written[buffer]!);
        return true;
    }

    private segment_of(chunk: number): number {
        for (let segment = 0; segment < segment_count; segment++) {
            if (chunk < this.chunk_first[segment + 1]!) return segment;
        }
        assert.fail('checkpoint: chunk out of range');
    }

    storage_complete(tag: number, result: number): void {
        assert(this.in_flight > 0);
        this.in_flight -= 1;
        if (tag === tag_sync) {
            assert(this.phase === Phase.sync || this.phase === Phase.sync_after);
            if (result < 0) {
                this.error = new GridRefusal(this.op_next, 0,
                    `sync failed with ${errno_name(-result)}`, -result);
            }
            if (this.error !== null) return this.fail();
            if (this.phase === Phase.sync_after) return this.durable();
            this.phase = Phase.superblock;
            this.superblock_swing();
            return;
        }
        const address = this.buffer_address[tag]!;
        if (this.phase < Phase.restore_root && this.block_write_retry(tag, result)) return;
        const item = this.buffer_item[tag]!;
        this.buffer_item[tag] = -1;
        if (this.phase >= Phase.restore_root) {
            return this.restore_block(tag, item, address, result);
        }
        if (this.phase === Phase.idle) {
            // A trickle write: a failure fails the next checkpoint (checkpoint_start).
            if (result < 0 && this.trickle_error === null) {
                this.trickle_error = new GridRefusal(this.op_durable, address,
                    `write at offset ${(address - 1) * this.block_size} failed ` +
                    `${grid_write_attempts_max} times with ${errno_name(-result)}`, -result);
            }
            this.trickle_advance();
            return;
        }
        if (result < 0 && this.error === null) {
            this.error = new GridRefusal(this.op_next, address, `write at offset ` +
                `${(address - 1) * this.block_size} failed ${grid_write_attempts_max} times ` +
                `with ${errno_name(-result)}`, -result);
        }
        this.advance();
    }

    private superblock_swing(): void {
        if (this.superblock.busy) {
            // A view change holds the superblock: the replica calls superblock_resume() after.
            this.superblock_waiting = true;
            return;
        }
        this.superblock_waiting = false;
        this.superblock.vsr_state_read(this.state);
        this.state.checkpoint_op = this.op_next;
        this.state.commit_max = Math.max(this.state.commit_max, this.commit_max_next);
        this.state.checkpoint_root_address = reference_address(this.root_ref_next, 0);
        this.state.checkpoint_id.set(this.root_ref_next.subarray(0, 16));
        this.superblock.update(this.state, true, this);
    }

    superblock_resume(): void {
        if (!this.superblock_waiting) return;
        assert(this.phase === Phase.superblock);
        this.superblock_swing();
    }

    superblock_done(error: StorageRefusal | null): void {
        assert(this.phase === Phase.superblock);
        if (error !== null) {
            this.error = error;
            return this.fail();
        }
        // Durable before any replaced block is reused (a no-op cost on an O_DSYNC file).
        this.phase = Phase.sync_after;
        this.in_flight += 1;
        assert(this.in_flight <= checkpointer_operations_max);
        this.storage.sync(this.target, tag_sync);
    }

    private durable(): void {
        // The new checkpoint is durable: the blocks it replaced can be reused.
        for (let index = 0; index < this.released_count; index++) {
            this.free_set.release(this.released[index]!);
        }
        this.released_count = 0;
        reference_copy(this.root_ref, 0, this.root_ref_next, 0);
        this.contract_check();
        // What a restore of this checkpoint would derive: exactly its blocks are acquired, and
        // allocation starts from the lowest address. So the next reservations are the same on a
        // replica that wrote this checkpoint and on one that restarts from it.
        assert.equal(this.free_set.acquired_count, this.tree_block_count(),
            'checkpoint: the free set holds blocks the new tree does not reference');
        this.free_set.cursor_reset();
        this.used_durable.set(this.used);
        this.trickle_reset();
        this.sessions_source = this.sessions_buffer;
        this.dirty_count = 0;
        this.op_durable = this.op_next;
        this.op_trickled = this.op_next;
        this.phase = Phase.idle;
        this.listener.checkpoint_done(this.op_next, null);
    }

    /** Trickle starts again from the last chunk of the durable checkpoint. */
    private trickle_reset(): void {
        // The chunk phase started every queued pre-write: the queue is empty at a checkpoint.
        assert.equal(this.trickle_queue_count, 0);
        for (let segment = 0; segment < segment_count; segment++) {
            this.trickle_end[segment] =
                Math.floor(this.used_durable[segment]! / this.payload) * this.payload;
        }
        this.trickle_queue_head = 0;
        this.trickle_budget_blocks = 0;
        this.trickle_chunks_pending = 0;
    }

    /** Blocks the tree in memory references: the root, its manifests, their chunks. */
    private tree_block_count(): number {
        let count = reference_address(this.root_ref, 0) === 0 ? 0 : 1;
        for (let manifest = 0; manifest < this.manifest_count; manifest++) {
            if (reference_address(this.manifest_refs, manifest * reference_size) !== 0) count++;
        }
        for (let chunk = 0; chunk < this.chunk_total; chunk++) {
            if (reference_address(this.chunk_refs, chunk * reference_size) !== 0) count++;
        }
        assert(count <= this.free_set.block_count);
        return count;
    }

    /** The ledger must not change while its checkpoint is written (no commits in between). */
    private contract_check(): void {
        this.ledger.state_used_bytes(this.used_check);
        for (let segment = 0; segment < segment_sessions; segment++) {
            assert.equal(this.used_check[segment], this.used[segment],
                'checkpoint: the ledger changed while its checkpoint was written');
        }
        assert.equal(this.ledger.accounts.dirty_count, 0, 'checkpoint: accounts changed');
        assert.equal(this.ledger.transfers.dirty_count, 0, 'checkpoint: transfers changed');
    }

    private fail(): void {
        assert(this.error !== null);
        const restoring = this.phase >= Phase.restore_root;
        this.phase = Phase.failed;
        if (restoring) this.listener.checkpoint_restored(this.error);
        else this.listener.checkpoint_done(this.op_next, this.error);
    }

    // ------------------------------------------------------------------------ restore

    /** Startup: loads the checkpoint the (opened) superblock names into the ledger. */
    restore(): void {
        assert(this.phase === Phase.idle && this.op_durable === -1 && this.in_flight === 0);
        assert(this.superblock.is_open);
        this.superblock.vsr_state_read(this.state);
        this.op_next = this.state.checkpoint_op;
        this.error = null;
        this.free_set.clear();
        this.chunk_refs.fill(0);
        this.manifest_refs.fill(0);
        this.used.fill(0);
        for (const segment of this.segments) segment.fill(0);
        if (this.state.checkpoint_root_address === 0) {
            assert.equal(this.state.checkpoint_op, 0);
            this.root_ref.fill(0);
            this.checkpoint_prepare_checksum.fill(0);
            this.restore_finish();
            return;
        }
        // The superblock holds the root's checksum and address; its size is read from the block.
        this.root_ref.fill(0);
        this.root_ref.set(this.state.checkpoint_id, 0);
        u64_write(this.root_ref, 16, this.state.checkpoint_root_address);
        this.phase = Phase.restore_root;
        this.block_read(0, this.state.checkpoint_root_address, this.block_size);
        if (this.error !== null) this.fail();
    }

    private block_read(item: number, address: number, size: number): void {
        if (address > this.free_set.block_count) {
            this.error = new GridRefusal(this.op_next, address, 'address beyond the grid');
            return;
        }
        if (!this.free_set.mark(address)) {
            this.error = new GridRefusal(this.op_next, address, 'referenced twice');
            return;
        }
        const buffer = this.buffer_acquire(item, address);
        this.storage.read(this.target, buffer, Zone.grid, (address - 1) * this.block_size,
            this.buffer_offsets[buffer]!, sector_ceil(size));
    }

    private restore_block(buffer: number, item: number, address: number, result: number): void {
        if (this.buffer_repair[buffer] === repair_writing) {
            this.buffer_repair[buffer] = repair_none;
            if (this.error === null && result < 0) {
                this.error = new GridRefusal(this.op_next, address, 'writing back the repaired ' +
                    `block failed with ${errno_name(-result)}`, -result);
            } else if (this.error === null) {
                this.blocks_repaired += 1;
                this.error = this.restore_apply(buffer, item, address);
            }
        } else if (this.error === null) {
            if (result >= 0 && this.restore_intact(buffer, item)) {
                this.error = this.restore_apply(buffer, item, address);
            } else {
                this.blocks_corrupt += 1;
                if (this.repair !== null) return this.repair_want(buffer, item, address);
                this.error = this.restore_refusal(item, address, result);
            }
        }
        this.restore_advance();
    }

    /** The buffer keeps its block's place while a peer's copy is fetched. */
    private repair_want(buffer: number, item: number, address: number): void {
        assert(this.repair !== null && this.buffer_item[buffer] === -1);
        this.buffer_item[buffer] = item;
        this.buffer_address[buffer] = address;
        this.buffer_repair[buffer] = repair_waiting;
        this.in_flight += 1;
        assert(this.in_flight <= checkpointer_operations_max);
        const refs = this.restore_refs();
        this.repair.want(buffer, address, refs, this.restore_ref_offset(item));
    }

    /**
     * The wanted block arrived from a peer (its header checksum is the reference's, both
     * checksums verified): it goes into the buffer, is verified as a read would be, and written
     * back to its address; it is applied when the write completes.
     */
    grid_block_repaired(tag: number, bytes: Uint8Array, offset: number): void {
        assert(tag >= 0 && tag < checkpoint_buffers);
        assert.equal(this.buffer_repair[tag], repair_waiting);
        assert(this.phase >= Phase.restore_root && this.error === null);
        const size = u32_read(bytes, offset + frame.size);
        assert(size >= header_size && size <= this.block_size);
        const target = this.buffer_offsets[tag]!;
        const arena = this.storage.arena.bytes;
        arena.set(bytes.subarray(offset, offset + size), target);
        arena.fill(0, target + size, target + sector_ceil(size));
        const item = this.buffer_item[tag]!;
        const address = this.buffer_address[tag]!;
        if (!this.restore_intact(tag, item)) {
            // Its header checksum is the reference's, yet it does not verify: not our block
            // (a peer's bug, or a checksum collision). Ask again; another peer may hold it.
            this.repair!.want(tag, address, this.restore_refs(), this.restore_ref_offset(item));
            return;
        }
        this.buffer_repair[tag] = repair_writing;
        this.storage.write(this.target, tag, Zone.grid, (address - 1) * this.block_size, target,
            sector_ceil(size));
    }

    /** The references the current restore phase reads against. */
    private restore_refs(): Uint8Array {
        if (this.phase === Phase.restore_root) return this.root_ref;
        return this.phase === Phase.restore_manifests ? this.manifest_refs : this.chunk_refs;
    }

    private restore_ref_offset(item: number): number {
        return this.phase === Phase.restore_root ? 0 : item * reference_size;
    }

    /** Whether the block in `buffer` is exactly the one its parent's reference names. */
    private restore_intact(buffer: number, item: number): boolean {
        const offset = this.buffer_offsets[buffer]!;
        const bytes = this.storage.arena.bytes;
        if (this.phase === Phase.restore_root) {
            // The superblock stores no size for the root: take the block's own, which the
            // checksum comparison then vouches for.
            u32_write(this.root_ref, 24, u32_read(bytes, offset + frame.size));
            return block_verify(bytes, offset, this.root_ref, 0, BlockType.root);
        }
        const type = this.phase === Phase.restore_manifests ? BlockType.manifest : BlockType.chunk;
        return block_verify(bytes, offset, this.restore_refs(), item * reference_size, type);
    }

    /** Why a single replica refuses a block that failed restore_intact or its read. */
    private restore_refusal(item: number, address: number, result: number): StorageRefusal {
        if (result < 0) {
            return new GridRefusal(this.op_next, address, `unreadable (errno ${-result})`);
        }
        if (this.phase === Phase.restore_root) {
            return new GridRefusal(this.op_next, address, 'root block corrupt (its checksum ' +
                'differs from the checkpoint id the superblock holds)');
        }
        if (this.phase === Phase.restore_manifests) {
            return new GridRefusal(this.op_next, address, `manifest block ${item} corrupt ` +
                '(checksum, address or size differs from its reference)');
        }
        return new GridRefusal(this.op_next, address, `${this.chunk_name(item)} corrupt ` +
            '(checksum, address or size differs from the manifest reference)');
    }

    private chunk_name(chunk: number): string {
        const segment = this.segment_of(chunk);
        return `chunk ${chunk - this.chunk_first[segment]!} of ${segment_names[segment]}`;
    }

    /** Applies the verified block in `buffer` to the tree or the state. */
    private restore_apply(buffer: number, item: number, address: number):
        StorageRefusal | null {
        const offset = this.buffer_offsets[buffer]!;
        const bytes = this.storage.arena.bytes;
        if (this.phase === Phase.restore_root) return this.root_apply(offset, address);
        if (this.phase === Phase.restore_manifests) {
            const first = item * this.refs_per_manifest;
            const count = Math.min(this.refs_per_manifest, this.chunk_total - first);
            this.chunk_refs.set(bytes.subarray(offset + header_size,
                offset + header_size + count * reference_size), first * reference_size);
            return null;
        }
        return this.chunk_apply(offset, address, item);
    }

    private root_apply(offset: number, address: number): StorageRefusal | null {
        const bytes = this.storage.arena.bytes;
        assert(block_verify(bytes, offset, this.root_ref, 0, BlockType.root));
        const body = offset + header_size;
        const mismatch = u32_read(bytes, body + b_magic) !== root_magic ||
            u32_read(bytes, body + b_segment_count) !== segment_count ||
            u32_read(bytes, body + b_payload) !== this.payload ||
            u32_read(bytes, body + b_manifest_count) !== this.manifest_count;
        if (mismatch) {
            return new GridRefusal(this.op_next, address, 'root block written with another ' +
                'block size or state layout: wrong config for this data file');
        }
        if (u64_read(bytes, body + b_op) !== this.op_next) {
            return new GridRefusal(this.op_next, address, 'root names another checkpoint op');
        }
        for (let segment = 0; segment < segment_count; segment++) {
            const capacity = u64_read(bytes, body + b_segments + segment * 16);
            const used = u64_read(bytes, body + b_segments + segment * 16 + 8);
            if (capacity !== this.capacity[segment] || used < 0 || used > capacity) {
                return new GridRefusal(this.op_next, address, `segment ` +
                    `${segment_names[segment]} capacity ${capacity} (config: ` +
                    `${this.capacity[segment]}), used ${used}: wrong ledger config`);
            }
            this.used[segment] = used;
        }
        this.checkpoint_prepare_checksum.set(bytes.subarray(body + b_prepare_checksum,
            body + b_prepare_checksum + 16));
        this.manifest_refs.set(bytes.subarray(body + root_body_fixed,
            body + root_body_fixed + this.manifest_count * reference_size));
        return null;
    }

    private chunk_apply(offset: number, address: number, chunk: number): StorageRefusal | null {
        const bytes = this.storage.arena.bytes;
        const segment = this.segment_of(chunk);
        const local = chunk - this.chunk_first[segment]!;
        const start = local * this.payload;
        const length = Math.min(this.payload, this.used[segment]! - start);
        const name = this.chunk_name(chunk);
        assert(block_verify(bytes, offset, this.chunk_refs, chunk * reference_size,
            BlockType.chunk));
        if (block_segment(bytes, offset) !== segment || block_chunk(bytes, offset) !== local) {
            return new GridRefusal(this.op_next, address, `${name} corrupt (checksum, address ` +
                'or size differs from the manifest reference)');
        }
        if (reference_size_read(this.chunk_refs, chunk * reference_size) !==
            header_size + length) {
            return new GridRefusal(this.op_next, address, `${name} size disagrees with the root`);
        }
        this.segments[segment]!.set(bytes.subarray(offset + header_size,
            offset + header_size + length), start);
        return null;
    }

    /** Moves restore on: root, then manifests, then chunks, each phase pipelined. */
    private restore_advance(): void {
        for (let pass = 0; pass < this.chunk_total + this.manifest_count + 8; pass++) {
            if (this.error !== null) {
                this.repairs_cancel();
                if (this.in_flight === 0) this.fail();
                return;
            }
            if (this.phase === Phase.restore_root) {
                // The root may be waiting for a peer's copy: its manifests follow it.
                if (this.in_flight > 0) return;
                this.phase_next(Phase.restore_manifests);
            } else if (this.phase === Phase.restore_manifests) {
                if (this.cursor === this.manifest_count) {
                    if (this.in_flight > 0) return;
                    this.phase_next(Phase.restore_chunks);
                } else if (this.in_flight < checkpoint_buffers) {
                    this.restore_read(this.manifest_refs, this.cursor++);
                } else {
                    return;
                }
            } else if (this.phase === Phase.restore_chunks) {
                if (this.cursor === this.chunk_total) {
                    if (this.in_flight > 0) return;
                    return this.restore_finish();
                }
                if (this.in_flight >= checkpoint_buffers) return;
                this.restore_read(this.chunk_refs, this.cursor++);
            }
        }
    }

    /** Reads the block `refs` names at `index`, or checks that an absent one is really absent. */
    private restore_read(refs: Uint8Array, index: number): void {
        const ref = index * reference_size;
        const address = reference_address(refs, ref);
        if (refs === this.chunk_refs) {
            const segment = this.segment_of(index);
            const start = (index - this.chunk_first[segment]!) * this.payload;
            const expected = start < this.used[segment]!;
            if ((address !== 0) !== expected) {
                this.error = new GridRefusal(this.op_next, address, `manifest reference of chunk` +
                    ` ${index} disagrees with the used size of ${segment_names[segment]}`);
                return;
            }
        }
        if (address === 0) return;
        this.block_read(index, address, reference_size_read(refs, ref));
    }

    /** The restore failed: buffers waiting for a peer's block wait no more. */
    private repairs_cancel(): void {
        assert(this.error !== null);
        for (let buffer = 0; buffer < checkpoint_buffers; buffer++) {
            if (this.buffer_repair[buffer] !== repair_waiting) continue;
            this.repair!.cancel(buffer);
            this.buffer_repair[buffer] = repair_none;
            this.buffer_item[buffer] = -1;
            this.in_flight -= 1;
            assert(this.in_flight >= 0);
        }
    }

    private restore_finish(): void {
        this.ledger.state_load_finish(this.used);
        this.ledger.accounts.dirty_clear();
        this.ledger.transfers.dirty_clear();
        this.used_durable.set(this.used);
        this.trickle_reset();
        this.op_durable = this.op_next;
        this.op_trickled = this.op_next;
        // Reachability acquired exactly the tree's blocks (block_read refuses one named twice).
        assert.equal(this.free_set.acquired_count, this.tree_block_count());
        this.phase = Phase.idle;
        this.listener.checkpoint_restored(null);
    }
}
