// FileStorage: the Storage interface over an Engine and one data file opened O_DIRECT|O_DSYNC.
// Every completed write is durable, so `sync` is only an fsync for callers that want one at a
// boundary. Storage tags are mapped to engine tags through a preallocated table (no closure, no
// object per I/O).
//
// Exclusive access. Node has no flock(2), and the addon does not export one yet, so the lock is a
// sibling `<path>.lock`, a symlink created atomically (like O_CREAT|O_EXCL) whose target is the
// owner's pid. A lock whose pid is no longer alive is stale and is taken over. This is weaker
// than flock: it is advisory, and after a reboot a reused pid can keep a stale lock (the operator
// then deletes the file, which the error message names). A native flock in the addon would
// replace it.
import assert from 'node:assert/strict';
import fs from 'node:fs';

import type { Engine, IoCompletionTarget } from '../io/engine';
import type { Storage, StorageCompletionTarget } from './storage';
import { StorageRefusal } from './storage';
import type { Zone, ZoneLayout } from './zones';

export class FileStorage implements Storage, IoCompletionTarget {
    readonly engine: Engine;
    readonly arena: Engine['arena'];
    readonly layout: ZoneLayout;
    readonly event_loop_driven: boolean;
    readonly fd: number;
    private readonly engine_target: number;
    private readonly targets: StorageCompletionTarget[] = [];
    private readonly slot_target: Int32Array;
    private readonly slot_tag: Int32Array;
    private readonly slot_expected: Float64Array;
    private readonly free: Int32Array;
    private free_count: number;
    in_flight = 0;

    constructor(engine: Engine, layout: ZoneLayout, fd: number, operations_max: number) {
        assert(operations_max > 0);
        this.engine = engine;
        this.arena = engine.arena;
        this.layout = layout;
        this.fd = fd;
        this.event_loop_driven = engine.kind !== 'io_uring';
        this.engine_target = engine.target_register(this);
        this.slot_target = new Int32Array(operations_max);
        this.slot_tag = new Int32Array(operations_max);
        this.slot_expected = new Float64Array(operations_max);
        this.free = new Int32Array(operations_max);
        for (let slot = 0; slot < operations_max; slot++) {
            this.free[slot] = operations_max - 1 - slot;
        }
        this.free_count = operations_max;
    }

    target_register(target: StorageCompletionTarget): number {
        this.targets.push(target);
        return this.targets.length - 1;
    }

    read(target: number, tag: number, zone: Zone, zone_offset: number, arena_offset: number,
        length: number): void {
        const file_offset = this.layout.offset(zone, zone_offset, length);
        const slot = this.slot_acquire(target, tag, length);
        this.engine.file_read(this.engine_target, slot, this.fd, arena_offset, length,
            file_offset);
    }

    write(target: number, tag: number, zone: Zone, zone_offset: number, arena_offset: number,
        length: number): void {
        const file_offset = this.layout.offset(zone, zone_offset, length);
        const slot = this.slot_acquire(target, tag, length);
        this.engine.file_write(this.engine_target, slot, this.fd, arena_offset, length,
            file_offset);
    }

    sync(target: number, tag: number): void {
        const slot = this.slot_acquire(target, tag, 0);
        this.engine.file_sync(this.engine_target, slot, this.fd, true);
    }

    /** Startup only: preallocates the whole file so that later writes cannot fail for space. */
    allocate(target: number, tag: number): void {
        const slot = this.slot_acquire(target, tag, 0);
        this.engine.file_allocate(this.engine_target, slot, this.fd, 0,
            this.layout.total_size_bytes);
    }

    tick(): number {
        if (this.event_loop_driven || this.in_flight === 0) return 0;
        return this.engine.run_once(10);
    }

    io_complete(slot: number, result: number): void {
        const target = this.slot_target[slot]!;
        const tag = this.slot_tag[slot]!;
        // A short read or write on a preallocated file is an I/O error, not a partial success.
        const expected = this.slot_expected[slot]!;
        const outcome = result >= 0 && expected > 0 && result !== expected ? -5 : result;
        this.free[this.free_count++] = slot;
        this.in_flight -= 1;
        this.targets[target]!.storage_complete(tag, outcome);
    }

    private slot_acquire(target: number, tag: number, expected: number): number {
        assert(target >= 0 && target < this.targets.length);
        assert(this.free_count > 0, 'file storage: more operations in flight than operations_max');
        const slot = this.free[--this.free_count]!;
        this.slot_target[slot] = target;
        this.slot_tag[slot] = tag;
        this.slot_expected[slot] = expected;
        this.in_flight += 1;
        return slot;
    }
}

export function lock_path(path: string): string {
    return `${path}.lock`;
}

function process_alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
}

function lock_owner(lock: string): number {
    try {
        return Number.parseInt(fs.readlinkSync(lock), 10);
    } catch {
        return -1;
    }
}

/** Takes the data file's lock or throws a StorageRefusal naming the holder. */
export function lock_acquire(path: string): void {
    const lock = lock_path(path);
    for (let attempt = 0; attempt < 2; attempt++) {
        try {
            // A symlink whose target is the pid: created atomically, readable without a write.
            fs.symlinkSync(String(process.pid), lock);
            return;
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        const pid = lock_owner(lock);
        if (Number.isSafeInteger(pid) && pid > 0 && process_alive(pid)) {
            throw new StorageRefusal('data file', -1, -1,
                `${path} is locked by process ${pid} (lock file ${lock})`);
        }
        // Stale: its owner died without unlinking it.
        fs.rmSync(lock, { force: true });
    }
    throw new StorageRefusal('data file', -1, -1, `could not take the lock ${lock}`);
}

export function lock_release(path: string): void {
    const lock = lock_path(path);
    assert.equal(lock_owner(lock), process.pid, 'lock_release: the lock is not ours');
    fs.rmSync(lock);
}
