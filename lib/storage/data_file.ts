// Formatting and opening the data file. Format creates the file (O_CREAT|O_EXCL: an existing file
// is never overwritten), preallocates every zone, writes the WAL, and writes the superblock last:
// a crash mid-format leaves no valid superblock, so the file reads as "not formatted" rather than
// as a replica with half a log. Open takes the lock, reads the superblock by quorum and recovers
// the WAL. Both are startup paths, so they may allocate and return Promises.
//
// After open, the replica restores the checkpoint the superblock names (checkpoint.ts: the grid
// starts empty, checkpoint op 0 with no root block) and replays the WAL after it; the client
// replies zone is preallocated zero and written by client_replies.ts.
import assert from 'node:assert/strict';

import type { Engine } from '../io/engine';
import { IoError } from '../io/errors';
import { FileStorage, lock_acquire, lock_release } from './file_storage';
import { Journal } from './journal';
import type { JournalListener } from './journal';
import { cluster_bytes } from './prepare_header';
import type { Storage, StorageCompletionTarget } from './storage';
import { StorageRefusal, storage_run_until } from './storage';
import { SuperBlock } from './superblock';
import type { SuperBlockListener } from './superblock';
import type { StorageConfig } from './zones';
import { ZoneLayout, header_size, superblock_copies, superblock_copy_size } from './zones';

export interface FormatOptions {
    cluster: bigint;
    replica: number;
    replica_count: number;
}

/** Arena bytes the superblock and journal take (allocate before sealing the arena). */
export function storage_arena_size(config: StorageConfig): number {
    return (1 + superblock_copies) * superblock_copy_size + config.slot_count * header_size +
        config.message_size_max;
}

/** Collects one outcome from the superblock and journal listeners (startup only). */
export class StartupWaiter implements SuperBlockListener, JournalListener {
    done = false;
    error: StorageRefusal | null = null;
    written_op = -1;
    written_result = 0;

    superblock_done(error: StorageRefusal | null): void { this.finish(error); }
    journal_done(error: StorageRefusal | null): void { this.finish(error); }
    journal_prepare_written(op: number, result: number): void {
        this.written_op = op;
        this.written_result = result;
        this.done = true;
    }

    reset(): void {
        this.done = false;
        this.error = null;
    }

    async wait(storage: Storage): Promise<void> {
        await storage_run_until(storage, () => this.done);
        if (this.error !== null) throw this.error;
        this.reset();
    }

    private finish(error: StorageRefusal | null): void {
        assert(!this.done);
        this.done = true;
        this.error = error;
    }
}

/** Writes a fresh superblock and WAL through any Storage (the file, or the simulator). */
export async function storage_format(storage: Storage, options: FormatOptions): Promise<void> {
    const waiter = new StartupWaiter();
    const cluster = cluster_bytes(options.cluster);
    const journal = new Journal(storage, waiter, cluster, options.replica_count);
    const superblock = new SuperBlock(storage, waiter);
    journal.format();
    await waiter.wait(storage);
    superblock.format(cluster, options.replica, options.replica_count);
    await waiter.wait(storage);
}

class AllocateWaiter implements StorageCompletionTarget {
    result = 1;
    storage_complete(_tag: number, result: number): void { this.result = result; }
}

/** Creates and formats the data file at `path`; refuses an existing file. */
export async function format(path: string, options: FormatOptions, engine: Engine,
    config: StorageConfig): Promise<void> {
    const layout = new ZoneLayout(config);
    lock_acquire(path);
    try {
        let fd: number;
        try {
            fd = engine.file_open(path, { direct: true, dsync: true, create: true });
        } catch (error) {
            if (error instanceof IoError && error.code === 'EEXIST') {
                throw new StorageRefusal('data file', -1, -1,
                    `${path} already exists: format never overwrites a data file`);
            }
            throw error;
        }
        const storage = new FileStorage(engine, layout, fd, 8);
        const allocate = new AllocateWaiter();
        storage.allocate(storage.target_register(allocate), 0);
        await storage_run_until(storage, () => allocate.result <= 0);
        if (allocate.result < 0) throw new IoError(allocate.result, 'fallocate', path);
        await storage_format(storage, options);
        await fd_close(engine, fd, path);
    } finally {
        lock_release(path);
    }
}

/** Closes a file descriptor through the engine and waits for it (startup and shutdown only). */
async function fd_close(engine: Engine, fd: number, path: string): Promise<void> {
    const closer = new AllocateWaiter();
    engine.close(engine.target_register({
        io_complete: (_tag: number, result: number) => closer.storage_complete(0, result),
    }), 0, fd);
    for (let turn = 0; turn < 1000 && closer.result > 0; turn++) {
        if (engine.kind === 'io_uring') engine.run_once(10);
        else await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (closer.result !== 0) throw new IoError(closer.result < 0 ? closer.result : -5,
        'close', path);
}

export interface OpenedDataFile {
    storage: FileStorage;
    superblock: SuperBlock;
    journal: Journal;
    waiter: StartupWaiter;
}

/**
 * Opens a formatted data file: lock, superblock quorum read (repairing stale copies), then WAL
 * recovery. Throws StorageRefusal (naming zone, slot and op) when the file cannot be trusted.
 * The caller owns the lock from here and releases it with `lock_release(path)` at shutdown.
 */
export async function open(path: string, engine: Engine, config: StorageConfig):
    Promise<OpenedDataFile> {
    const layout = new ZoneLayout(config);
    lock_acquire(path);
    let fd = -1;
    try {
        fd = engine.file_open(path, { direct: true, dsync: true, create: false });
        const storage = new FileStorage(engine, layout, fd, 8);
        return await storage_open(storage);
    } catch (error) {
        if (fd >= 0) await fd_close(engine, fd, path).catch(() => undefined);
        lock_release(path);
        throw error;
    }
}

/** The open sequence over any Storage: superblock first (it names the cluster), then the WAL. */
export async function storage_open<S extends Storage>(storage: S): Promise<{
    storage: S; superblock: SuperBlock; journal: Journal; waiter: StartupWaiter;
}> {
    const waiter = new StartupWaiter();
    const superblock = new SuperBlock(storage, waiter);
    superblock.open();
    await waiter.wait(storage);
    if (superblock.storage_size !== storage.layout.total_size_bytes) {
        throw new StorageRefusal('superblock', -1, -1,
            `formatted for ${superblock.storage_size} bytes of zones, the config needs ` +
            `${storage.layout.total_size_bytes}: wrong config for this data file`);
    }
    const journal = new Journal(storage, waiter, superblock.cluster_bytes(),
        superblock.replica_count);
    journal.recover();
    await waiter.wait(storage);
    return { storage, superblock, journal, waiter };
}

/** Closes an opened data file and releases its lock (shutdown; nothing may be in flight). */
export async function close(opened: OpenedDataFile, path: string): Promise<void> {
    assert.equal(opened.storage.in_flight, 0);
    assert(!opened.journal.busy);
    try {
        await fd_close(opened.storage.engine, opened.storage.fd, path);
    } finally {
        lock_release(path);
    }
}
