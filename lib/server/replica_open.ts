// The startup sequence over any Storage (the data file, or the simulator): superblock quorum read,
// then WAL recovery, with the journal and superblock built around the replica's storage listener
// so that their later completions reach the replica; then the replica with its checkpointer and
// client replies. The checkpoint restore and the WAL replay follow in Replica.open(). Also the
// data file shape a replica of some capacity needs. Startup only: allocates and awaits.
import assert from 'node:assert/strict';

import { header_size } from '../constants';
import type { Ledger, LedgerConfig } from '../ledger/ledger';
import { LedgerStateMachine } from '../ledger/state_machine';
import {
    Checkpointer, checkpointer_arena_size, checkpointer_operations_max, storage_config_for,
} from '../ledger/checkpoint';
import { ClientReplies, client_replies_iops_max } from '../vsr/client_replies';
import { grid_repair_serve_reads_max } from '../vsr/grid_repair';
import { storage_arena_size } from '../vsr/data_file';
import type { Storage } from '../storage/storage';
import { Journal, journal_operations_max } from '../vsr/journal';
import { SuperBlock } from '../vsr/superblock';
import type { StorageConfig } from '../storage/zones';
import { sector_ceil, sector_size } from '../storage/zones';
import {
    Replica, ReplicaCheckpointListener, ReplicaStorageListener, sessions_size_max,
} from '../vsr/replica';
import type { ReplicaOptions } from '../vsr/replica';

export interface ReplicaStorage {
    listener: ReplicaStorageListener;
    superblock: SuperBlock;
    journal: Journal;
}

export async function replica_storage_open(storage: Storage): Promise<ReplicaStorage> {
    const listener = new ReplicaStorageListener();
    const superblock = new SuperBlock(storage, listener);
    superblock.open();
    await listener.startup.wait(storage);
    const refusal = superblock.layout_refusal();
    if (refusal !== null) throw refusal;
    const journal = new Journal(storage, listener, superblock.cluster_bytes(),
        superblock.replica_count);
    journal.recover();
    await listener.startup.wait(storage);
    return { listener, superblock, journal };
}

/** The replica's options, with the ledger in place of the parts built here over it. */
export type ReplicaCreateOptions =
    Omit<ReplicaOptions, 'checkpointer' | 'client_replies' | 'state_machine'> & { ledger: Ledger };

/** The superblock writes and reads its copies one after another. */
const superblock_operations_max = 1;
/** WAL reads: one commit read (the replay, or a backup committing), one to serve a peer's
 * request_prepare, one to refill a new primary's pipeline; each asserted by its user. */
const replay_operations_max = 3;

/**
 * Storage operations a replica can have in flight at once: the sum of each user's own bound, each
 * asserted where that user submits. Sized this way, the storage's own pool is never exhausted by
 * construction; a user with more work than its bound queues it (client replies at a checkpoint)
 * or waits for a completion (journal writes, checkpoint blocks).
 */
export const replica_storage_operations_max = journal_operations_max + replay_operations_max +
    checkpointer_operations_max + superblock_operations_max + client_replies_iops_max +
    grid_repair_serve_reads_max;

/**
 * Builds the replica with its Checkpointer and ClientReplies over the same storage (allocating
 * their arena buffers: call before the arena is sealed). Call `open()` on the result.
 */
export function replica_create(options: ReplicaCreateOptions): Replica {
    const listener = new ReplicaCheckpointListener();
    const client_replies = new ClientReplies(options.storage, listener);
    const checkpointer = new Checkpointer(options.storage, options.superblock, options.ledger,
        client_replies, listener, sessions_size_max(options.clients_max));
    const state_machine = new LedgerStateMachine(options.ledger,
        options.pool.message_size_max - header_size);
    const replica = new Replica({ ...options, checkpointer, client_replies, state_machine });
    listener.replica = replica;
    return replica;
}

/** The data file's zones for a replica of this capacity (format and start must agree). */
export function replica_storage_config(base: StorageConfig, clients_max: number,
    ledger: LedgerConfig): StorageConfig {
    assert.equal(base.clients_max, clients_max);
    return storage_config_for(base, ledger, sessions_size_max(clients_max));
}

/** Arena bytes the storage side of a replica takes (before the message pool). */
export function replica_storage_arena_size(config: StorageConfig): number {
    return sector_ceil(storage_arena_size(config)) + checkpointer_arena_size(config) +
        sector_size;
}
