// The checkpoint schedule and the replica's view of a checkpointer. The schedule is the WAL's
// arithmetic (which op triggers a checkpoint, how far the primary may prepare); the checkpointer
// that writes the state machine's state to the grid is the state machine's own (the ledger's is
// lib/ledger/checkpoint.ts): the replica drives it through `StateCheckpointer`.
import assert from 'node:assert/strict';

import { StorageRefusal } from '../storage/storage';
import type { GridRepairQueue } from './grid_repair';

/**
 * Ops between checkpoints, from the WAL slot count and the pipeline (docs/data-file.md §6.4). While
 * checkpoint c is the durable one, ops after c must stay in the WAL, so the highest op a replica
 * may write is c + slot_count. The next checkpoint is c + interval, written during the commit of
 * that op (our state has no in-memory LSM tables, so TB's "bar" of lag is zero here); up to a
 * pipeline of ops may be prepared while it is written, and another pipeline covers backups that
 * ack before reaching it (docs/vsr.md §4). Hence interval = slot_count - 2 * pipeline.
 */
export function checkpoint_interval_ops(slot_count: number, pipeline_max: number): number {
    assert(Number.isInteger(slot_count) && Number.isInteger(pipeline_max));
    assert(pipeline_max >= 1);
    const interval = slot_count - 2 * pipeline_max;
    assert(interval >= pipeline_max, 'the WAL must hold more than three pipelines of ops');
    return interval;
}

export class CheckpointSchedule {
    readonly slot_count: number;
    readonly pipeline_max: number;
    readonly interval_ops: number;

    constructor(slot_count: number, pipeline_max: number) {
        this.slot_count = slot_count;
        this.pipeline_max = pipeline_max;
        this.interval_ops = checkpoint_interval_ops(slot_count, pipeline_max);
        // The relationships of docs/data-file.md §6.4, asserted once at startup.
        assert(this.op_prepare_max(0) === this.interval_ops + 2 * pipeline_max);
        assert(this.op_prepare_max(0) <= slot_count, 'a prepare would overwrite an op after c');
        assert(this.op_checkpoint_next(0) + pipeline_max < slot_count);
    }

    /** The checkpoint after `op_checkpoint`. */
    op_checkpoint_next(op_checkpoint: number): number {
        assert(Number.isSafeInteger(op_checkpoint) && op_checkpoint >= 0);
        return op_checkpoint + this.interval_ops;
    }

    /** Whether committing `op` must write the next checkpoint (it sits inside that commit). */
    op_is_trigger(op: number, op_checkpoint_durable: number): boolean {
        assert(Number.isSafeInteger(op) && op >= 1);
        return op === this.op_checkpoint_next(op_checkpoint_durable);
    }

    /** The highest op a replica may write to its WAL while `c` is its durable checkpoint. */
    op_prepare_max(op_checkpoint_durable: number): number {
        const op_max = this.op_checkpoint_next(op_checkpoint_durable) + 2 * this.pipeline_max;
        // The WAL never holds more than one ring of ops past the durable checkpoint.
        assert(op_max - op_checkpoint_durable <= this.slot_count);
        return op_max;
    }

    /** Writing `op` overwrites op - slot_count, which must be covered by the durable checkpoint. */
    slot_reusable(op: number, op_checkpoint_durable: number): boolean {
        assert(op >= 1 && op_checkpoint_durable >= 0);
        return op - this.slot_count <= op_checkpoint_durable;
    }
}

/** A grid block that failed verification or could not be read: names the zone and address. */
export class GridRefusal extends StorageRefusal {
    readonly address: number;
    /** The errno of a failed write or sync (0: the refusal is about contents read back). */
    readonly errno: number;

    constructor(op: number, address: number, reason: string, errno = 0) {
        super('grid', op, -1, `block address ${address}: ${reason}`);
        // The errno of a failed write is positive (the address may come from a damaged disk).
        assert(errno >= 0);
        this.name = 'GridRefusal';
        this.address = address;
        this.errno = errno;
    }
}

/** A grid block write is tried this many times before the checkpoint is failed. */
export const grid_write_attempts_max = 4;

export interface CheckpointListener {
    /** The superblock names checkpoint `op` and replaced blocks are free; or a refusal. */
    checkpoint_done(op: number, error: StorageRefusal | null): void;
    /** restore() finished: the ledger holds the checkpoint's state; or a refusal. */
    checkpoint_restored(error: StorageRefusal | null): void;
}


/** What the replica asks of the checkpointer of its state machine's state. */
export interface StateCheckpointer {
    /** A checkpoint or a restore is running. */
    readonly busy: boolean;
    /** The op of the checkpoint restored at startup. */
    readonly op_checkpoint: number;
    /** Startup: loads the checkpoint the opened superblock names; checkpoint_restored() after. */
    restore(): void;
    /** The restored client-sessions blob. */
    sessions(): Uint8Array;
    /** The checksum of the prepare the restored checkpoint was taken at. */
    prepare_checksum(): Uint8Array;
    /**
     * Writes checkpoint `op`: commit_max for the superblock, the checksum of op's prepare (at
     * prepare_checksum_offset), and the client-sessions blob; checkpoint_done() after.
     */
    checkpoint_start(op: number, commit_max: number, prepare_checksum: Uint8Array,
        prepare_checksum_offset: number, sessions: Uint8Array, sessions_size: number): void;
    /**
     * Op `op` was just executed (the state is exactly the state after it): decides which blocks
     * that will not change before the next checkpoint are pre-written, and where, and starts
     * what it can. Called once per executed op, in op order, on every path that executes one
     * (primary, backup, WAL replay), up to the next checkpoint's op before its checkpoint_start:
     * then every replica's grid is the same function of the ops, whatever the batching of
     * commits, a restart, or the order of I/O completions.
     */
    trickle_op(op: number): void;
    /**
     * Deprecated (trickle_op replaces it): before the first trickle_op, pre-writes up to
     * `blocks_max` blocks, where I/O timing allows (so the grid differs between replicas);
     * after it, only starts writes trickle_op queued. Returns how many it started.
     */
    trickle(blocks_max: number): number;
    /**
     * A cluster replica (before restore): a block restore finds corrupt is fetched from a peer
     * through `repair` and written back, instead of refusing to start.
     */
    grid_repair_attach(repair: GridRepairQueue): void;
    /** The superblock is free again after a view change's update: a waiting checkpoint goes on. */
    superblock_resume(): void;
}
