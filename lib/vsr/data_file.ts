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

import os from 'node:os';

import { Arena, sector_size } from '../io/arena';
import type { Engine, EngineKind } from '../io/engine';
import { IoError } from '../io/errors';
import { create_engine } from '../io/index';
import { FileStorage, lock_acquire, lock_release } from '../storage/file_storage';
import { Journal } from './journal';
import type { JournalListener } from './journal';
import { cluster_bytes } from './prepare_header';
import type { Storage, StorageCompletionTarget } from '../storage/storage';
import { StorageRefusal, storage_run_until } from '../storage/storage';
import { SuperBlock } from './superblock';
import type { FormatCapacity, FormatRecovery, SuperBlockListener } from './superblock';
import type { StorageConfig } from '../storage/zones';
import {
    ZoneLayout, config_test, header_size, superblock_copies, superblock_copy_size,
} from '../storage/zones';

const errno_timed_out = os.constants.errno.ETIMEDOUT;

export interface FormatOptions {
    cluster: bigint;
    replica: number;
    replica_count: number;
    /** The ledger capacity recorded in the superblock (zero where a test formats storage). */
    capacity?: FormatCapacity;
    /** A data file rebuilt by `ringledger recover` (superblock.ts FormatRecovery). */
    recovery?: FormatRecovery;
}

/** Arena bytes the superblock and journal take (allocate before sealing the arena). */
export function storage_arena_size(config: StorageConfig): number {
    const size = (1 + superblock_copies) * superblock_copy_size +
        config.slot_count * header_size + config.message_size_max;
    // Each allocation is sector-aligned: whole sectors, so no alignment padding is left out.
    assert.equal(size % sector_size, 0);
    return size;
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
        assert(op > 0 && result <= 0);
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
    // A fresh log holds the root prepare only.
    assert(journal.op_max === 0 && !journal.busy);
    superblock.format(cluster, options.replica, options.replica_count,
        options.capacity ?? { accounts_max: 0, transfers_max: 0 }, options.recovery ?? null);
    await waiter.wait(storage);
    assert(superblock.is_open && superblock.sequence === 1);
}

class AllocateWaiter implements StorageCompletionTarget {
    result = 1;
    storage_complete(_tag: number, result: number): void {
        // One fallocate, completing once with 0 or -errno.
        assert(this.result === 1 && result <= 0);
        this.result = result;
    }
}

/** Creates and formats the data file at `path`; refuses an existing file. */
export async function format(path: string, options: FormatOptions, engine: Engine,
    config: StorageConfig): Promise<void> {
    const layout = new ZoneLayout(config);
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
    // Created exclusively by us; the lock keeps a `start` off it until it is whole (one that
    // comes in between finds no superblock and refuses it as not formatted).
    try {
        lock_acquire(path);
    } catch (error) {
        await fd_close(engine, fd, path);
        throw error;
    }
    try {
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

/** How long a close of the data file may take before it is reported as failed. */
const file_close_timeout_ms = 10_000;

/**
 * Closes the data file through the engine and waits for the completion, bounded by an engine
 * timeout (not the wall clock, and not a count of turns: on the libuv engine the close runs on
 * the thread pool, which a loaded machine may take a while to reach). Startup and shutdown only.
 */
export async function fd_close(engine: Engine, fd: number, path: string): Promise<void> {
    assert(fd >= 0);
    const pending = 1; // A close completes with 0 or a negative errno.
    const tag_close = 0;
    const tag_timeout = 1;
    let closed = pending;
    let timeout_result = pending;
    let wake: (() => void) | null = null;
    const target = engine.target_register({
        io_complete: (tag: number, result: number) => {
            assert(tag === tag_close || tag === tag_timeout);
            if (tag === tag_close) closed = result;
            else timeout_result = result;
            if (wake !== null) wake();
        },
    });
    engine.close(target, tag_close, fd);
    engine.timeout(target, tag_timeout, file_close_timeout_ms);
    const wait = async (done: () => boolean): Promise<void> => {
        // Bounded: the timeout completes by itself, and a cancel completes at once.
        while (!done()) {
            if (engine.kind === 'io_uring') {
                engine.run_once(10);
            } else {
                await new Promise<void>((resolve) => { wake = resolve; });
                wake = null;
            }
        }
    };
    await wait(() => closed !== pending || timeout_result !== pending);
    if (timeout_result === pending) engine.cancel(target, tag_timeout);
    await wait(() => timeout_result !== pending);
    if (closed === pending) {
        throw new IoError(-errno_timed_out, 'close', path,
            `did not complete in ${file_close_timeout_ms} ms`);
    }
    if (closed !== 0) throw new IoError(closed, 'close', path);
}

/** What a data file records at format: its place in the cluster, its shape, its capacity. */
export interface DataFileSettings {
    replica: number;
    replica_count: number;
    config: StorageConfig;
    capacity: FormatCapacity;
}

/**
 * Reads a data file's format-time settings from its superblock (quorum read), before anything
 * is sized from them: a small arena and engine of its own, released before returning.
 */
export async function settings_read(path: string, io: EngineKind): Promise<DataFileSettings> {
    const arena = new Arena((1 + superblock_copies) * superblock_copy_size + sector_size);
    const engine = create_engine(io, { arena, entries: 8 });
    let fd = -1;
    try {
        fd = engine.file_open(path, { direct: true, dsync: true, create: false });
        // Any shape places the superblock zone at offset 0 with the same size.
        const storage = new FileStorage(engine, new ZoneLayout(config_test), fd, 2);
        const waiter = new StartupWaiter();
        const superblock = new SuperBlock(storage, waiter);
        arena.seal();
        superblock.open();
        await waiter.wait(storage);
        assert(superblock.is_open);
        return {
            replica: superblock.replica, replica_count: superblock.replica_count,
            config: superblock.storage_config(),
            capacity: { accounts_max: superblock.accounts_max,
                transfers_max: superblock.transfers_max },
        };
    } finally {
        if (fd >= 0) await fd_close(engine, fd, path).catch(() => undefined);
        engine.destroy();
    }
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
    assert(superblock.is_open && !superblock.busy);
    const refusal = superblock.layout_refusal();
    if (refusal !== null) throw refusal;
    const journal = new Journal(storage, waiter, superblock.cluster_bytes(),
        superblock.replica_count);
    journal.recover();
    await waiter.wait(storage);
    // Recovery found the head (op 0 at least: the root) and is done.
    assert(journal.op_max >= 0 && !journal.busy);
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
